import ArgumentParser
import DriftcheckCA
import Foundation

/// `--ca-dir` for every command that uses the local CA.
struct CAOptions: ParsableArguments {
    @Option(
        name: .customLong("ca-dir"),
        help: ArgumentHelp("Where the local CA for --intercept-tls lives (default: ~/.driftcheck/).", valueName: "dir"))
    var caDirectory: String?

    var directory: CADirectory { CADirectory.resolve(caDirectory, environment: ProcessInfo.processInfo.environment) }
}

/// `driftcheck ca`: the local certificate authority behind `record --intercept-tls`.
struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "The local CA that signs certificates for hosts recorded with --intercept-tls.",
        subcommands: [CAInitCommand.self, CAPrintCommand.self]
    )
}

struct CAInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Make a local CA (its key readable by you only).")

    @OptionGroup var caOptions: CAOptions

    @Flag(name: .long, help: "Replace an existing CA (clients trusting the old one must trust the new one).")
    var force = false

    func run() throws {
        let directory = caOptions.directory
        do {
            try directory.create(now: Date(), replace: force)
        } catch {
            throw UsageError(error.description)
        }
        Terminal.say("made a local CA: \(directory.certificatePath) (key: \(directory.keyPath), mode 0600)")
        Terminal.say("'driftcheck ca print' shows it and how to trust it")
    }
}

struct CAPrintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print", abstract: "Print the CA certificate (PEM) on stdout and how to trust it on stderr.")

    @OptionGroup var caOptions: CAOptions

    func run() throws {
        let directory = caOptions.directory
        let authority: CertificateAuthority
        do {
            authority = try directory.load()
        } catch {
            throw UsageError(error.description)
        }
        print(authority.certificatePEM, terminator: "")
        let file = directory.certificatePath
        for line in [
            "\(file): \(authority.certificate.subject), valid until \(authority.certificate.notValidAfter)",
            "commands wrapped by 'driftcheck record --intercept-tls' trust it already (SSL_CERT_FILE,",
            "  REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, CURL_CA_BUNDLE point at a bundle that holds it).",
            "to trust it elsewhere:",
            "  Debian/Ubuntu: sudo cp \(file) /usr/local/share/ca-certificates/driftcheck.crt && sudo update-ca-certificates",
            "  Fedora/RHEL:   sudo cp \(file) /etc/pki/ca-trust/source/anchors/driftcheck.pem && sudo update-ca-trust",
            "  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain \(file)",
            "  Java:          keytool -importcert -alias driftcheck -file \(file) -cacerts",
            "anyone holding its key can impersonate any site to a machine that trusts it: keep it local.",
        ] {
            Terminal.say(line)
        }
    }
}
