import DriftcheckCore
import DriftcheckDemo
import DriftcheckPostgres
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A local store of `count` distinct exchanges of `service` (and `shared`, the same in every
/// store made with it), written directly: the recorder's own path is tested elsewhere.
func makeLocalStore(
    _ path: String, service: String, count: Int, shared: Int = 0, startingAt start: Double = 1_790_000_000
) throws {
    let store = try SQLiteStore(path: path)
    let session = try store.beginSession(mode: "reverse", command: nil, toolVersion: "test")
    var batch: [Exchange] = []
    func exchange(_ service: String, _ index: Int, _ time: Double) -> Exchange {
        Exchange(
            service: service,
            request: RecordedRequest(
                method: "GET", host: "\(service).shop", port: 80, path: "/items/\(index)", query: nil,
                headers: HeaderFields([("Accept", "application/json")])),
            result: .response(
                RecordedResponse(
                    status: 200, headers: HeaderFields([("Content-Type", "application/json")]),
                    body: CapturedBody(
                        bytes: Data(#"{"id":\#(index),"name":"item \#(index)","price":\#(index % 97)}"#.utf8)))),
            startedAt: Date(timeIntervalSince1970: time), duration: 0.002)
    }
    for index in 0..<count {
        batch.append(exchange(service, index, start + Double(index) / 1000))
        if batch.count == 5000 {
            try store.insert(batch, session: session)
            batch.removeAll()
        }
    }
    for index in 0..<shared { batch.append(exchange("catalog", index, 1_700_000_000 + Double(index))) }
    try store.insert(batch, session: session)
    try store.endSession(session)
    try store.close()
}

/// "N|M": exchanges in the team store, and distinct content hashes among them.
func teamCounts(_ server: PostgresServer, _ url: String) async throws -> String {
    try await server.psql(url, "SELECT count(*), count(DISTINCT content_hash) FROM driftcheck.exchange")
}

@Suite struct TeamStoreTests {
    @Test func pushAndPullAreIdempotentAndEveryCommandReadsTheTeamStore() async throws {
        let server = try await PostgresServer.shared.value
        let url = try await server.createDatabase()
        let secretURL = url.replacingOccurrences(of: "driftcheck@", with: "driftcheck:hunter2@")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let local = directory.file("local.sqlite")
        let demo = try await DriftcheckBinary.run(["demo", "--store", local], in: directory)
        #expect(demo.status == 0)
        let recorded = try SQLiteStore(path: local).count()
        #expect(recorded > 10)

        let push = try await DriftcheckBinary.run(["push", "--store", local, "--to", secretURL], in: directory)
        #expect(push.status == 0)
        #expect(push.output.contains("pushed \(recorded) exchanges") && push.output.contains("\(recorded) new"))
        // The password never reaches the terminal.
        #expect(!push.output.contains("hunter2") && push.output.contains("driftcheck:***@"))
        let again = try await DriftcheckBinary.run(["push", "--store", local, "--to", url], in: directory)
        #expect(again.output.contains("0 new, \(recorded) already there"))
        #expect(try await teamCounts(server, url) == "\(recorded)|\(recorded)")

        // list, compare and export read the team store as they read a file; DRIFTCHECK_STORE names it too.
        let listLocal = try await DriftcheckBinary.run(["list", "--store", local], in: directory)
        let listTeam = try await DriftcheckBinary.run(["list"], in: directory, environment: ["DRIFTCHECK_STORE": url])
        #expect(listTeam.status == 0 && listTeam.output == listLocal.output)
        let mocks = Fixtures.path("demo/mocks")
        let compareLocal = try await DriftcheckBinary.run(
            ["compare", mocks, "--store", local, "--format", "json"], in: directory)
        let compareTeam = try await DriftcheckBinary.run(
            ["compare", mocks, "--store", url, "--format", "json"], in: directory)
        #expect(compareTeam.status == compareLocal.status)
        #expect(compareTeam.output == compareLocal.output && compareTeam.output.contains(#""breaking": 4"#))
        let gateTeam = try await DriftcheckBinary.run(["gate", mocks, "--store", url], in: directory)
        #expect(gateTeam.status == 1, "\(gateTeam.output)")
        let export = try await DriftcheckBinary.run(
            ["export", "--store", url, "--har", directory.file("team.har")], in: directory)
        #expect(export.status == 0)
        #expect(try String(contentsOfFile: directory.file("team.har"), encoding: .utf8).contains("/orders/42"))

        // pull brings back the same exchanges, once.
        let back = directory.file("back.sqlite")
        let pull = try await DriftcheckBinary.run(["pull", "--from", url, "--store", back], in: directory)
        #expect(pull.status == 0 && pull.output.contains("\(recorded) new"))
        let pullAgain = try await DriftcheckBinary.run(["pull", "--from", url, "--store", back], in: directory)
        #expect(pullAgain.output.contains("0 new"))
        let hashes = "SELECT hex(content_hash) FROM exchange ORDER BY 1;"
        #expect(try runSQLite(back, hashes) == runSQLite(local, hashes))

        // Filters: by service, by time.
        let other = try await server.createDatabase()
        try await offPool { try makeLocalStore(directory.file("mixed.sqlite"), service: "users", count: 30) }
        let mixed = directory.file("mixed.sqlite")
        _ = try await DriftcheckBinary.run(["push", "--store", local, "--to", other], in: directory)
        // Items 0…29 were recorded a millisecond apart from 2026-09-21T14:13:20Z.
        let users = try await DriftcheckBinary.run(
            ["push", "--store", mixed, "--to", other, "--service", "users", "--since", "2026-09-21T14:13:20.010Z"],
            in: directory)
        #expect(users.status == 0, "\(users.output)")
        let admitted = try await server.psql(
            other, "SELECT count(*), min(path) FROM driftcheck.exchange WHERE service = 'users'")
        #expect(admitted == "20|/items/10")
        #expect(try await server.psql(other, "SELECT count(DISTINCT service) FROM driftcheck.exchange") == "2")
    }

    @Test func badStoreURLsAreOneLineAndExitTwo() async throws {
        let server = try await PostgresServer.shared.value
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let port = try freeLoopbackPort()
        let cases: [([String], String)] = [
            (
                ["list", "--store", "postgres://who:secret@127.0.0.1:\(port)/db"],
                "postgres://who:***@127.0.0.1:\(port)/db: cannot reach the store"
            ),
            (["list", "--store", server.url("no_such_db")], "database \"no_such_db\" does not exist"),
            // libpq quotes what it cannot parse; the password is hidden there too.
            (["list", "--store", "postgres://who:secret%ZZ@127.0.0.1:1/db"], "invalid percent-encoded token: \"***\""),
            (["list", "--store", "postgres://who:secret@[::1"], "postgres://who:***@[::1: cannot reach the store"),
            (
                [
                    "gate", Fixtures.path("demo/mocks"), "--store",
                    "postgres://127.0.0.1:1/db?password=secret&sslmode=bogus",
                ],
                "invalid sslmode value"
            ),
            (
                ["push", "--to", server.url(), "--since", "last tuesday"],
                "--since 'last tuesday': not a date, an ISO 8601 time or an age like 7d"
            ),
        ]
        for (arguments, message) in cases {
            let result = try await DriftcheckBinary.run(arguments, in: directory, inside: true)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.output.contains(message), "\(result.output)")
            #expect(!result.output.contains("secret"))
            #expect(result.output.split(separator: "\n").count == 1, "\(result.output)")
        }
    }

    /// Eight pushes and two recorders into one database at once: every exchange once.
    @Test func manyWritersAtOnceStoreEveryExchangeOnce() async throws {
        let server = try await PostgresServer.shared.value
        let url = try await server.createDatabase()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try await offPool {
            for index in 0..<8 {
                try makeLocalStore(
                    directory.file("s\(index).sqlite"), service: "svc\(index)", count: 2000, shared: 300)
            }
        }
        let upstream = try await TestUpstream.start()
        var recorders: [DriftcheckBinary.Running] = []
        for index in 0..<2 {
            let recorderDirectory = directory.file("recorder\(index)")
            try FileManager.default.createDirectory(atPath: recorderDirectory, withIntermediateDirectories: true)
            recorders.append(
                try DriftcheckBinary.start(
                    [
                        "record", "--store", url, "--upstream", "orders=\(upstream.baseURL)", "--listen", "127.0.0.1:0",
                        "--outbox", directory.file("outbox\(index).sqlite"),
                    ], in: directory))
        }
        var ports: [Int] = []
        for recorder in recorders { ports.append(try await recorder.listeners(1)[0]) }
        let pushes = try (0..<8).map { index in
            try DriftcheckBinary.start(
                ["push", "--store", directory.file("s\(index).sqlite"), "--to", url], in: directory)
        }
        let sent = try await withThrowingTaskGroup(of: Int.self) { group in
            for port in ports {
                group.addTask {
                    var ok = 0
                    for round in 0..<10 {
                        let requests = (0..<25).map { ClientRequest("GET", "/count/\(round * 25 + $0)") }
                        let responses = try await LoopbackHTTPClient.send(requests, port: port, group: testGroup)
                        ok += responses.filter { $0.status == 200 }.count
                    }
                    return ok
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(sent == 500)
        for push in pushes { #expect(await push.process.wait() == 0, "\(push.output)") }
        for recorder in recorders {
            recorder.process.signalGroup(SIGINT)
            #expect(await recorder.process.wait() == 0, "\(recorder.output)")
            #expect(recorder.output.contains("recorded 250 exchanges in \(url)"), "\(recorder.output)")
        }
        let expected = 8 * 2000 + 300 + 500
        #expect(try await teamCounts(server, url) == "\(expected)|\(expected)")
        let sessions = try await server.psql(url, "SELECT count(*), count(ended_at) FROM driftcheck.session")
        #expect(sessions == "10|10")
    }

    @Test func aPushCutOffByAServerCrashIsCompletedByTheNextWithoutDuplicates() async throws {
        let server = try await PostgresServer.start()
        let directory = try TemporaryDirectory()
        defer {
            directory.remove()
        }
        let url = try await server.createDatabase()
        let local = directory.file("big.sqlite")
        let count = 60_000
        try await offPool { try makeLocalStore(local, service: "orders", count: count) }
        let push = try DriftcheckBinary.start(["push", "--store", local, "--to", url], in: directory)
        // Kill the server once some pages are committed and the push is still going.
        var partial = 0
        let started = await eventually(timeout: 120) {
            partial = Int((try? await server.psql(url, "SELECT count(*) FROM driftcheck.exchange")) ?? "") ?? 0
            return partial > 0
        }
        #expect(started)
        try await offPool { try server.kill() }
        let status = await push.process.wait()
        try await server.startServer()
        let afterCrash = Int(try await server.psql(url, "SELECT count(*) FROM driftcheck.exchange")) ?? -1
        // 60,000 exchanges take seconds to push even in a release build; the kill came after the
        // first page, so the push was cut off, said so on one line, and left part of the store.
        #expect(status == 2, "\(push.output)")
        #expect(push.output.contains("error: \(url): "), "\(push.output)")
        #expect(afterCrash > 0 && afterCrash < count)
        let again = try await DriftcheckBinary.run(["push", "--store", local, "--to", url], in: directory)
        #expect(again.status == 0, "\(again.output)")
        #expect(again.output.contains("\(count - afterCrash) new"), "\(again.output)")
        #expect(try await teamCounts(server, url) == "\(count)|\(count)")
        await server.stop()
    }

    /// The server goes away while a service is being recorded: its traffic does not notice,
    /// and every exchange reaches the team store once the server is back.
    @Test func recordingOutlivesTheServerAndCatchesUp() async throws {
        let server = try await PostgresServer.start()
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = try await server.createDatabase()
        let upstream = try await TestUpstream.start()
        let outbox = directory.file("outbox.sqlite")
        let recorder = try DriftcheckBinary.start(
            [
                "record", "--store", url, "--outbox", outbox, "--upstream", "orders=\(upstream.baseURL)", "--listen",
                "127.0.0.1:0",
            ], in: directory)
        let port = try await recorder.listeners(1)[0]
        func send(_ range: Range<Int>) async throws -> [Int] {
            try await LoopbackHTTPClient.send(
                range.map { ClientRequest("GET", "/count/\($0)") }, port: port, group: testGroup
            )
            .map(\.status)
        }
        #expect(try await send(0..<50) == Array(repeating: 200, count: 50))
        #expect(await eventually { (try? await teamCounts(server, url)) == "50|50" })

        try await offPool { try server.kill() }
        let began = ContinuousClock.now
        #expect(try await send(50..<150) == Array(repeating: 200, count: 100))
        let elapsed = ContinuousClock.now - began
        // Nothing waited on the dead server: 100 requests on loopback, far below a connect timeout.
        #expect(elapsed < .seconds(8))
        try await server.startServer()
        #expect(await eventually(timeout: 60) { (try? await teamCounts(server, url)) == "150|150" })

        // Down again when recording stops: what is left waits in the outbox, and push sends it.
        try await offPool { try server.kill() }
        #expect(try await send(150..<170) == Array(repeating: 200, count: 20))
        recorder.process.signalGroup(SIGINT)
        #expect(await recorder.process.wait() == 0)
        #expect(recorder.output.contains("20 exchanges wait in \(outbox)"), "\(recorder.output)")
        try await server.startServer()
        let push = try await DriftcheckBinary.run(["push", "--store", outbox, "--to", url], in: directory)
        #expect(push.status == 0 && push.output.contains("20 new"), "\(push.output)")
        #expect(try await teamCounts(server, url) == "170|170")
        let ended = try await server.psql(url, "SELECT count(ended_at) FROM driftcheck.session")
        #expect(ended == "1")
        await server.stop()
    }

    @Test func theTeamStoreSpeaksTLS() async throws {
        let server = try await PostgresServer.start(tls: true)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let local = directory.file("local.sqlite")
        try await offPool { try makeLocalStore(local, service: "orders", count: 10) }
        // The server accepts only TLS over TCP (hostssl); `psql` through its socket makes the database.
        try await server.psql(
            "postgres://driftcheck@/postgres?host=\(server.directory)&port=\(server.port)", "CREATE DATABASE team")
        let plain = server.url("team", query: "sslmode=disable")
        let refused = try await DriftcheckBinary.run(["push", "--store", local, "--to", plain], in: directory)
        #expect(refused.status == 2 && refused.output.contains("no encryption"), "\(refused.output)")
        for mode in ["sslmode=require", "sslmode=verify-full&sslrootcert=\(server.directory)/ca.pem"] {
            let secure = server.url("team", query: mode)
            let push = try await DriftcheckBinary.run(["push", "--store", local, "--to", secure], in: directory)
            #expect(push.status == 0, "\(push.output)")
            let store = try PostgresStore(url: secure)
            #expect(store.usesTLS)
            #expect(try store.count() == 10)
        }
        // verify-full against roots that did not sign the server's certificate is refused.
        let wrongRoots = server.url("team", query: "sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt")
        let unverified = try await DriftcheckBinary.run(["push", "--store", local, "--to", wrongRoots], in: directory)
        #expect(
            unverified.status == 2 && unverified.output.contains("certificate verify failed"), "\(unverified.output)")
        await server.stop()
    }
}
