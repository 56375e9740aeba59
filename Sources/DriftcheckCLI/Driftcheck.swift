import ArgumentParser
import DriftcheckCore
import DriftcheckPostgres
import DriftcheckStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The version recorded in each session and printed by `--version`.
public let driftcheckVersion = "0.1.0"

/// The `driftcheck` command.
public struct Driftcheck: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "driftcheck",
        abstract: "Record real dependency traffic and keep local mocks honest.",
        version: driftcheckVersion,
        subcommands: [
            RecordCommand.self, CompareCommand.self, GateCommand.self, ListCommand.self, ExportCommand.self,
            ImportCommand.self, PushCommand.self, PullCommand.self, DemoCommand.self, CACommand.self,
        ]
    )

    public init() {}
}

/// Why driftcheck ends with a status other than 0: the one type that decides exit statuses
/// (SPEC: 1 drift, 2 bad usage or input, 3 a mock unreachable or not started).
public enum ExitReason: Error {
    /// Drift at or above `--fail-on`.
    case drift
    /// Bad usage, configuration or unreadable input, with one line naming the culprit.
    case usage(UsageError)
    /// A mock could not be reached or started; what happened was already said.
    case mock
    /// `record -- COMMAND` ends with the command's own status.
    case command(Int32)

    public var status: Int32 {
        switch self {
        case .drift: return 1
        case .usage: return 2
        case .mock: return 3
        case .command(let status): return status
        }
    }

    /// The reason behind an error a command threw; nil for ArgumentParser's own.
    static func of(_ error: Error) -> ExitReason? {
        switch error {
        case let reason as ExitReason: return reason
        case let usage as UsageError: return .usage(usage)
        case let store as StoreError: return .usage(UsageError(store.description))
        default: return nil
        }
    }
}

/// Runs the command line and exits with the status SPEC defines.
public enum DriftcheckMain {
    public static func run(_ arguments: [String]? = nil) async -> Never {
        do {
            var command = try Driftcheck.parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch {
            if let reason = ExitReason.of(error) {
                if case .usage(let usage) = reason { Terminal.error(usage.description) }
                exit(reason.status)
            }
            let code = Driftcheck.exitCode(for: error)
            if code == .success {
                // --help and --version.
                print(Driftcheck.fullMessage(for: error))
                exit(0)
            }
            if error is ExitCode {
                exit(code.rawValue)
            }
            // Argument errors: ArgumentParser's words on one line, and SPEC's exit status for bad usage.
            let message = Driftcheck.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            Terminal.error("\(message) (see 'driftcheck --help')")
            exit(2)
        }
    }
}

/// Lines for people on stderr, in one format.
enum Terminal {
    static func say(_ line: String) {
        FileHandle.standardError.write(Data("driftcheck: \(line)\n".utf8))
    }

    static func warning(_ line: String) { say("warning: \(line)") }
    static func error(_ line: String) { say("error: \(line)") }
}

/// Options every command that reads or writes recordings takes.
struct StoreOptions: ParsableArguments {
    static let defaultPath = ".driftcheck/recordings.sqlite"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The recordings store: a SQLite file, created on first use, or a postgres:// URL (default: $DRIFTCHECK_STORE, else \(defaultPath)).",
            valueName: "path|url"))
    var store: String?

    /// `--store`, else `DRIFTCHECK_STORE`, else the default file.
    var location: String {
        if let store { return store }
        if let variable = ProcessInfo.processInfo.environment["DRIFTCHECK_STORE"], !variable.isEmpty { return variable }
        return Self.defaultPath
    }

    /// Opens an existing store for reading, without creating a file.
    func openExisting() throws -> any RecordingStore {
        try Stores.open(location, create: false)
    }

    /// Opens the store, creating it when missing.
    func open() throws -> any RecordingStore {
        try Stores.open(location, create: true)
    }
}

/// Where a store location leads: a `postgres://` URL to the team store, anything else to a file.
enum Stores {
    static func open(_ location: String, create: Bool) throws -> any RecordingStore {
        if PostgresStore.isURL(location) { return try PostgresStore(url: location) }
        if !create && !FileManager.default.fileExists(atPath: location) {
            throw UsageError("\(location): no such store (record something first, or pass --store)")
        }
        return try SQLiteStore(path: location)
    }

    /// The local file a recorder writes through when its store is remote: one per store URL, so
    /// what one run could not send is sent by the next.
    static func outboxPath(for url: String) -> String {
        // FNV-1a: a stable name, not a secret (the URL's password is left out first).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in PostgresStore.redacted(url).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return ".driftcheck/outbox-\(String(hash, radix: 16)).sqlite"
    }
}

/// `--config` for commands that only need the policy file's `redact:` section.
struct ConfigOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Policy file whose redact: section adds to redaction (default: driftcheck.yml if present).",
            valueName: "path"))
    var config: String?

    /// The default redaction plus the policy file's and the command line's additions.
    func redaction(headers: [String] = [], fields: [String] = []) throws -> RedactionPolicy {
        try ConfigFile.load(explicit: config).redaction(headers: headers, fields: fields)
    }
}
