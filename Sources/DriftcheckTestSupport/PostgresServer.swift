import DriftcheckDemo
import DriftcheckProcess
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real PostgreSQL server for tests: its own cluster in a temporary directory, on a free
/// loopback port, run as an unprivileged user when the tests run as root (PostgreSQL refuses
/// root), and stopped when the test process ends, however it ends.
public final class PostgresServer: Sendable {
    public let port: Int
    public let directory: String
    /// Where the server's certificate and key are, when it was started with TLS.
    public let tls: Bool
    private let owner: String?

    /// One server for the whole test run; each test takes a database of its own.
    public static let shared = Task { try await PostgresServer.start() }

    public var data: String { directory + "/data" }
    public var log: String { directory + "/server.log" }

    private init(port: Int, directory: String, tls: Bool, owner: String?) {
        self.port = port
        self.directory = directory
        self.tls = tls
        self.owner = owner
    }

    /// The URL of `database` on this server.
    public func url(_ database: String = "postgres", query: String = "") -> String {
        "postgres://driftcheck@127.0.0.1:\(port)/\(database)" + (query.isEmpty ? "" : "?" + query)
    }

    /// A new empty database; its URL.
    public func createDatabase() async throws -> String {
        let name = "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        try await psql(url(), "CREATE DATABASE \(name)")
        return url(name)
    }

    /// Runs SQL with the psql client; its output, unaligned and without headers.
    @discardableResult
    public func psql(_ url: String, _ sql: String) async throws -> String {
        try await Self.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql], as: nil)
    }

    /// Starts a cluster; with `tls`, a server certificate for 127.0.0.1 signed by a CA written
    /// to `ca.pem` in the directory, and only TLS connections accepted over TCP.
    public static func start(tls: Bool = false) async throws -> PostgresServer {
        let directory = NSTemporaryDirectory() + "driftcheck-pg-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let owner: String? = geteuid() == 0 ? "postgres" : nil
        let port = try freeLoopbackPort()
        let server = PostgresServer(port: port, directory: directory, tls: tls, owner: owner)
        if tls { try await server.makeCertificates() }
        if let owner { try await run(["chown", "-R", owner, directory], as: nil) }
        try await run(
            [tool("initdb"), "-D", server.data, "-U", "driftcheck", "--auth=trust", "-E", "UTF8", "--no-locale"],
            as: owner)
        if tls {
            try "hostssl all all 127.0.0.1/32 trust\nlocal all all trust\n".write(
                toFile: server.data + "/pg_hba.conf", atomically: true, encoding: .utf8)
        }
        try await server.startServer()
        try server.watchOver()
        return server
    }

    /// Starts the server on its cluster (again, after `kill`).
    public func startServer() async throws {
        var options = "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        if tls {
            options +=
                " -c ssl=on -c ssl_cert_file=\(directory)/server.pem -c ssl_key_file=\(directory)/server-key.pem"
        }
        try await Self.run(
            [Self.tool("pg_ctl"), "-D", data, "-o", options, "-l", log, "-w", "-t", "120", "start"], as: owner)
    }

    /// Kills the server at once (SIGKILL to the postmaster), as a crash or an OOM kill would.
    public func kill() throws {
        let text = try String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8)
        guard let pid = text.split(separator: "\n").first.flatMap({ pid_t($0) }) else { return }
        Glibc.kill(pid, SIGKILL)
        // Its backends notice the postmaster's death and leave; wait until the port is free.
        for _ in 0..<100 where (try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8)) != nil {
            if Glibc.kill(pid, 0) != 0 { break }
            usleep(50_000)
        }
        usleep(200_000)
    }

    /// Stops the server and removes its directory.
    public func stop() async {
        _ = try? await Self.run([Self.tool("pg_ctl"), "-D", data, "-m", "immediate", "stop"], as: owner)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A watchdog that stops the server when this process is gone, even after SIGKILL.
    private func watchOver() throws {
        let stop = [Self.tool("pg_ctl"), "-D", data, "-m", "immediate", "stop"].joined(separator: " ")
        let command = owner.map { "runuser -u \($0) -- \(stop)" } ?? stop
        let script =
            "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(command) >/dev/null 2>&1; rm -rf \(directory)"
        _ = try ChildProcess.spawn(
            ["sh", "-c", script], environment: ProcessInfo.processInfo.environment, outputPath: "/dev/null")
    }

    private func makeCertificates() async throws {
        let ca = directory + "/ca"
        try await Self.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=driftcheck test CA",
                "-keyout", ca + "-key.pem", "-out", directory + "/ca.pem",
            ], as: nil)
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(
            toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
        try await Self.run(
            [
                "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
                directory + "/server-key.pem", "-out", directory + "/server.csr",
            ], as: nil)
        try await Self.run(
            [
                "openssl", "x509", "-req", "-in", directory + "/server.csr", "-CA", directory + "/ca.pem", "-CAkey",
                ca + "-key.pem", "-CAcreateserial", "-days", "2", "-extfile", directory + "/san.ext", "-out",
                directory + "/server.pem",
            ], as: nil)
        // PostgreSQL refuses a key others can read.
        chmod(directory + "/server-key.pem", 0o600)
    }

    /// initdb and pg_ctl from PATH, else from Debian's versioned directory.
    static func tool(_ name: String) -> String {
        if let found = ChildProcess.locate(name, path: ProcessInfo.processInfo.environment["PATH"]) { return found }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for version in versions.sorted(by: >)
        where FileManager.default.fileExists(atPath: "\(root)/\(version)/bin/\(name)") {
            return "\(root)/\(version)/bin/\(name)"
        }
        return name
    }

    /// Runs a command to its end (as `user` when given); its output, or an error with it.
    @discardableResult
    static func run(_ arguments: [String], as user: String?) async throws -> String {
        let command = user.map { ["runuser", "-u", $0, "--"] + arguments } ?? arguments
        let output = NSTemporaryDirectory() + "driftcheck-pg-out-" + UUID().uuidString
        defer { unlink(output) }
        let process = try ChildProcess.spawn(
            command, environment: ProcessInfo.processInfo.environment, directory: "/", outputPath: output)
        let status = await process.wait()
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw ClientError(description: "\(arguments.joined(separator: " ")) exited \(status): \(text)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
