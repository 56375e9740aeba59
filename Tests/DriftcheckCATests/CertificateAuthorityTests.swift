import DriftcheckCA
import DriftcheckProcess
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a tool to completion: its status and what it printed.
func run(_ arguments: [String], in directory: TemporaryDirectory) async throws -> (status: Int32, output: String) {
    let log = directory.file("tool-\(UUID().uuidString.prefix(6)).log")
    let process = try ChildProcess.spawn(arguments, environment: ProcessInfo.processInfo.environment, outputPath: log)
    let status = await process.wait()
    return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
}

func mode(_ path: String) -> mode_t {
    var status = stat()
    stat(path, &status)
    return status.st_mode & 0o777
}

@Suite struct CertificateAuthorityTests {
    let now = Date()

    @Test func aNewCAsKeyIsReadableByItsOwnerOnlyAndLoadsBack() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let directory = CADirectory(path: temporary.file("home/.driftcheck"))
        let made = try directory.create(now: now)
        #expect(mode(directory.keyPath) == 0o600)
        #expect(mode(directory.path) == 0o700)
        #expect(mode(directory.certificatePath) == 0o644)
        let loaded = try directory.load()
        #expect(loaded.certificate == made.certificate)
        // No temporary file is left behind.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["ca-key.pem", "ca.pem"])
    }

    @Test func anExistingCAIsKeptUnlessReplaced() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let directory = CADirectory(path: temporary.path)
        let first = try directory.create(now: now)
        #expect(throws: CAError.exists(directory: temporary.path)) { try directory.create(now: now) }
        #expect(try directory.load().certificate == first.certificate)
        let second = try directory.create(now: now, replace: true)
        #expect(second.certificate != first.certificate)
        #expect(try directory.loadOrCreate(now: now).created == false)
    }

    @Test func aKeyOthersCanReadIsRefusedAsSSHDoes() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let directory = CADirectory(path: temporary.path)
        try directory.create(now: now)
        chmod(directory.keyPath, 0o644)
        #expect(throws: CAError.exposedKey(path: directory.keyPath, mode: "644")) { try directory.load() }
    }

    @Test(arguments: [
        ("ca-key.pem", "garbage"), ("ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ("ca.pem", ""),
    ])
    func corruptFilesAreNamedNotTrapped(file: String, content: String) throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let directory = CADirectory(path: temporary.path)
        try directory.create(now: now)
        let path = temporary.file(file)
        try content.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
        do {
            _ = try directory.load()
            Issue.record("a corrupt \(file) loaded")
        } catch {
            #expect(error.description.hasPrefix(temporary.path), "\(error)")
        }
    }

    @Test func aKeyFromAnotherCAIsRefused() throws {
        let one = try CertificateAuthority.create(now: now)
        let other = try CertificateAuthority.create(now: now)
        #expect(throws: CAError.invalid("the key does not belong to the certificate")) {
            try CertificateAuthority(certificatePEM: one.certificatePEM, keyPEM: other.keyPEM)
        }
    }

    /// OpenSSL, not our code, decides whether the leaves are good server certificates for
    /// their host and only for it, with the strict X.509 checks Python 3.13 turns on.
    @Test func leavesVerifyWithOpenSSLForTheirHostOnly() async throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let directory = CADirectory(path: temporary.path)
        let authority = try directory.create(now: now)
        let issuer = LeafIssuer(authority: authority) { self.now }
        for (host, check, wrong) in [
            ("api.payments.test", "-verify_hostname", "api.other.test"), ("127.0.0.1", "-verify_ip", "127.0.0.2"),
            ("::1", "-verify_ip", "::2"),
        ] {
            let credentials = try issuer.credentials(for: host)
            #expect(credentials.certificateChainPEM.count == 2)
            #expect(try issuer.credentials(for: host).certificateChainPEM == credentials.certificateChainPEM)
            let leaf = try temporary.write("leaf.pem", credentials.certificateChainPEM[0])
            let good = try await run(
                [
                    "openssl", "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", directory.certificatePath,
                    check, host, leaf,
                ], in: temporary)
            #expect(good.status == 0, "\(host): \(good.output)")
            let bad = try await run(
                [
                    "openssl", "verify", "-purpose", "sslserver", "-CAfile", directory.certificatePath, check, wrong,
                    leaf,
                ],
                in: temporary)
            #expect(bad.status != 0, "\(host) passed for \(wrong)")
        }
        // A leaf is no CA: it cannot sign another certificate that OpenSSL would accept.
        let leaf = try temporary.write("leaf.pem", try issuer.credentials(for: "a.test").certificateChainPEM[0])
        let text = try await run(["openssl", "x509", "-in", leaf, "-noout", "-text"], in: temporary)
        #expect(text.output.contains("CA:FALSE"), "\(text.output)")
        #expect(text.output.contains("TLS Web Server Authentication"), "\(text.output)")
    }

    @Test func theBundleHoldsTheRootsTrustedAlreadyAndTheCA() throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        let directory = CADirectory(path: temporary.path)
        let authority = try directory.create(now: now)
        let own = try temporary.write("own.pem", "# a root of the user's own\n")
        let bundle = try String(contentsOfFile: directory.writeBundle(authority, base: own), encoding: .utf8)
        #expect(bundle.hasPrefix("# a root of the user's own\n"))
        #expect(bundle.hasSuffix(authority.certificatePEM))
    }
}
