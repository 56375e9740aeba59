import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where the CA lives on disk (`~/.driftcheck/` unless `--ca-dir`): `ca.pem`, `ca-key.pem`
/// (mode 0600 from the moment it exists) and the trust bundle handed to wrapped commands.
public struct CADirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// `--ca-dir`, else `$HOME/.driftcheck`.
    public static func resolve(_ explicit: String?, environment: [String: String]) -> CADirectory {
        if let explicit { return CADirectory(path: explicit) }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return CADirectory(path: (home as NSString).appendingPathComponent(".driftcheck"))
    }

    public var certificatePath: String { (path as NSString).appendingPathComponent("ca.pem") }
    public var keyPath: String { (path as NSString).appendingPathComponent("ca-key.pem") }
    public var bundlePath: String { (path as NSString).appendingPathComponent("trust-bundle.pem") }

    public var exists: Bool { FileManager.default.fileExists(atPath: keyPath) }

    /// Makes a new CA and writes it; refuses to replace one unless `replace`.
    @discardableResult
    public func create(now: Date, replace: Bool = false) throws(CAError) -> CertificateAuthority {
        if exists && !replace { throw .exists(directory: path) }
        try makeDirectory()
        let authority: CertificateAuthority
        do {
            authority = try CertificateAuthority.create(now: now)
        } catch {
            throw .invalid("cannot make a CA: \(error)")
        }
        // The key first: a certificate without its key is a CA nobody can use.
        try Self.write(authority.keyPEM, to: keyPath, mode: 0o600)
        try Self.write(authority.certificatePEM, to: certificatePath, mode: 0o644)
        return authority
    }

    /// Reads the CA; refuses a key others can read, as ssh does.
    public func load() throws(CAError) -> CertificateAuthority {
        guard exists else { throw .missing(directory: path) }
        var status = stat()
        guard stat(keyPath, &status) == 0 else {
            throw .unreadable(path: keyPath, reason: String(cString: strerror(errno)))
        }
        if status.st_mode & 0o077 != 0 {
            throw .exposedKey(path: keyPath, mode: String(status.st_mode & 0o777, radix: 8))
        }
        let keyPEM = try Self.read(keyPath)
        let certificatePEM = try Self.read(certificatePath)
        do {
            return try CertificateAuthority(certificatePEM: certificatePEM, keyPEM: keyPEM)
        } catch {
            throw .invalidFile(path: path, reason: error.description)
        }
    }

    /// The CA, made first when there is none yet; `created` says which.
    public func loadOrCreate(now: Date) throws(CAError) -> (authority: CertificateAuthority, created: Bool) {
        if exists { return (try load(), false) }
        return (try create(now: now), true)
    }

    /// Writes the trust bundle for a wrapped command: the roots it trusts already (`base`, or the
    /// system's bundle) followed by the CA; returns its path.
    public func writeBundle(_ authority: CertificateAuthority, base: String?) throws(CAError) -> String {
        var text = ""
        if let source = base ?? Self.systemBundles.first(where: { FileManager.default.isReadableFile(atPath: $0) }) {
            text = try Self.read(source)
            if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        }
        text += "# driftcheck local CA (\(certificatePath))\n" + authority.certificatePEM
        try Self.write(text, to: bundlePath, mode: 0o644)
        return bundlePath
    }

    /// Where Debian/Ubuntu, Fedora/RHEL, Alpine/macOS and SUSE keep their roots.
    static let systemBundles = [
        "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem",
        "/etc/ssl/ca-bundle.pem",
    ]

    private func makeDirectory() throws(CAError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw .cannotWrite(path: path, reason: "not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .cannotWrite(path: path, reason: error.localizedDescription)
        }
    }

    private static func read(_ path: String) throws(CAError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(
                path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission" : "missing")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .invalidFile(path: path, reason: "not UTF-8 text")
        }
        return text
    }

    /// Writes through a temporary file created with `mode` and renamed into place: the content
    /// is never readable with a wider mode, and a reader never sees half a file.
    private static func write(_ text: String, to path: String, mode: mode_t) throws(CAError) {
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL, mode)
        guard descriptor >= 0 else { throw .cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                unlink(temporary)
                throw .cannotWrite(path: path, reason: reason)
            }
            written += count
        }
        // The umask may have narrowed `mode` at creation; fchmod sets it exactly.
        fchmod(descriptor, mode)
        fsync(descriptor)
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .cannotWrite(path: path, reason: reason)
        }
    }
}
