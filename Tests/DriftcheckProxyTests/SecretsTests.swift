import DriftcheckCore
import DriftcheckDemo
import DriftcheckProxy
import DriftcheckTestSupport
import Foundation
import Testing

@Suite struct SecretsTests {
    static let secrets = [
        "hdr-bearer-5ec7e1", "apikey-5ec7e2", "cookie-5ec7e3", "query-5ec7e4", "json-5ec7e5", "form-5ec7e6",
        "path-5ec7e7", "upstream-session-secret", "custom-5ec7e8",
    ]

    @Test func plantedSecretsReachNeitherTheDatabaseNorItsWAL() async throws {
        let upstream = try await TestUpstream.start()
        var redaction = RedactionPolicy()
        redaction.addHeader("X-Tenant-Key")
        try redaction.addField("$.profile.ssn")
        let harness = try await ProxyHarness.reverse(to: upstream, redaction: redaction)
        defer { harness.remove() }
        let requests: [ClientRequest] = [
            ClientRequest(
                "GET", "/echo/a?page=1&access_token=query-5ec7e4",
                headers: [
                    ("Authorization", "Bearer hdr-bearer-5ec7e1"), ("X-API-Key", "apikey-5ec7e2"),
                    ("Cookie", "sid=cookie-5ec7e3; lang=en"), ("X-Tenant-Key", "custom-5ec7e8"),
                ]),
            .json("POST", "/echo/b", #"{"user":"ann","password":"json-5ec7e5","profile":{"ssn":"path-5ec7e7"}}"#),
            ClientRequest(
                "POST", "/echo/c", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: .bytes(Data("user=ann&client_secret=form-5ec7e6".utf8))),
        ]
        let responses = try await LoopbackHTTPClient.send(requests, port: harness.port, group: testGroup)
        #expect(responses.allSatisfy { $0.status == 200 })
        // The echo upstream repeats every secret back in its response bodies, so they must be
        // redacted there too, where they are no longer in a header.
        #expect(responses[0].text.contains("hdr-bearer-5ec7e1"))

        _ = await harness.proxy.shutdown()
        let statistics = harness.writer.finish()
        #expect(statistics.written == 3)
        let database = harness.directory.file("recordings.sqlite")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: database))
        let wal = database + "-wal"
        #expect(FileManager.default.fileExists(atPath: wal))
        bytes += (try? Data(contentsOf: URL(fileURLWithPath: wal))) ?? Data()
        let haystack = String(decoding: bytes, as: UTF8.self)
        for secret in Self.secrets {
            #expect(!haystack.contains(secret), "\(secret) reached the store")
        }
        let stored = try harness.store.exchanges()
        #expect(normalizedMarkers(stored[0].request.headers["authorization"]) == "Bearer <redacted>")
        #expect(normalizedMarkers(stored[0].request.query) == "page=1&access_token=<redacted>")
        await upstream.stop()
    }
}
