import DriftcheckCore
import DriftcheckDemo
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Known secrets planted in headers, cookies, query strings, JSON and form bodies must appear
/// in none of: the store (database and WAL), an exported HAR, exported WireMock mappings,
/// any report format, or what driftcheck prints.
@Suite(.serialized) struct SecretsEverywhereTests {
    static let secrets = [
        "s3cr3t-bearer-AAAA", "s3cr3t-apikey-BBBB", "s3cr3t-cookie-CCCC", "s3cr3t-query-DDDD", "s3cr3t-json-EEEE",
        "s3cr3t-form-FFFF", "upstream-session-secret",
    ]

    func assertClean(_ text: String, _ where_: String) {
        for secret in Self.secrets {
            #expect(!text.contains(secret), "\(secret) found in \(where_)")
        }
    }

    @Test func secretsReachNoFileAndNoOutput() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await TestUpstream.start()
        let (running, store, port) = try await startRecorder(for: upstream, in: directory)
        let requests: [ClientRequest] = [
            ClientRequest(
                "GET", "/echo/a?page=1&access_token=s3cr3t-query-DDDD",
                headers: [
                    ("Authorization", "Bearer s3cr3t-bearer-AAAA"), ("X-API-Key", "s3cr3t-apikey-BBBB"),
                    ("Cookie", "sid=s3cr3t-cookie-CCCC"),
                ]),
            .json("POST", "/echo/b", #"{"user":"ann","password":"s3cr3t-json-EEEE"}"#),
            ClientRequest(
                "POST", "/echo/c", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: .bytes(Data("user=ann&client_secret=s3cr3t-form-FFFF".utf8))),
        ]
        let responses = try await LoopbackHTTPClient.send(requests, port: port, group: testGroup)
        #expect(responses.allSatisfy { $0.status == 200 })
        #expect(responses[0].text.contains("s3cr3t-bearer-AAAA"))

        // Before the recorder exits the WAL holds the newest transactions: read both now.
        try await Task.sleep(nanoseconds: 300_000_000)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: store))
        bytes += (try? Data(contentsOf: URL(fileURLWithPath: store + "-wal"))) ?? Data()
        assertClean(String(decoding: bytes, as: UTF8.self), "the store and its WAL")
        running.process.signalGroup(SIGINT)
        #expect(await running.process.wait() == 0)
        assertClean(running.output, "the recorder's output")
        #expect(try SQLiteStore(path: store).count() == 3)

        let har = directory.file("contract.har")
        let exported = try await DriftcheckBinary.run(
            ["export", "--har", har, "--wiremock", directory.file("mocks"), "--store", store], in: directory)
        #expect(exported.status == 0)
        assertClean(try String(contentsOfFile: har, encoding: .utf8), "the exported HAR")
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.file("mocks/orders/mappings")) {
            assertClean(
                try String(contentsOfFile: directory.file("mocks/orders/mappings/\(file)"), encoding: .utf8), file)
        }

        // Compare against a stub that echoes differently, so every report has findings to print.
        try FileManager.default.createDirectory(
            atPath: directory.file("drift/orders/mappings"), withIntermediateDirectories: true)
        _ = try directory.write(
            "drift/orders/mappings/echo.json",
            #"{"request":{"method":"ANY","urlPathPattern":"/echo/.*"},"response":{"status":200,"headers":{"Content-Type":"application/json"},"jsonBody":{"method":"GET","extra":true}}}"#
        )
        var arguments = ["compare", directory.file("drift"), "--store", store, "--explain"]
        for format in ["text", "json", "junit", "markdown", "html"] {
            arguments += ["--format", format, "--output", directory.file("report.\(format)")]
        }
        let compared = try await DriftcheckBinary.run(arguments, in: directory)
        #expect(compared.status == 0, "\(compared.output)")
        assertClean(compared.output, "compare's output")
        for format in ["text", "json", "junit", "markdown", "html"] {
            let report = try String(contentsOfFile: directory.file("report.\(format)"), encoding: .utf8)
            #expect(report.contains("phantom-field"))
            assertClean(report, "the \(format) report")
        }
        let listed = try await DriftcheckBinary.run(["list", "--store", store, "--json"], in: directory)
        assertClean(listed.output, "list's output")
        await upstream.stop()
    }
}
