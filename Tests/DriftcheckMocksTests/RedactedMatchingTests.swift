import DriftcheckCore
import DriftcheckMocks
import DriftcheckReplay
import DriftcheckTestSupport
import Foundation
import Testing

/// Recordings are redacted before they reach disk, yet the mappings a team writes match on the
/// credentials. A matcher that fails only on a redacted value counts as matched in the built-in
/// engine; real WireMock over HTTP receives stand-ins of the recorded shape and matches them.
@Suite(.serialized) struct RedactedMatchingTests {
    static let mappings: [(String, String)] = [
        (
            "cookie.json",
            #"{"request":{"method":"GET","urlPath":"/me","cookies":{"session":{"matches":"s-[0-9]+"}}},"response":{"status":200,"body":"cookie-ok"}}"#
        ),
        (
            "header.json",
            #"{"request":{"method":"GET","urlPath":"/account","headers":{"Authorization":{"matches":"Bearer sk_live_[a-z0-9]+"}}},"response":{"status":200,"body":"header-ok"}}"#
        ),
        (
            "query.json",
            #"{"request":{"method":"GET","urlPath":"/search","queryParameters":{"api_key":{"matches":"sk_test_[A-Z0-9]+"},"q":{"equalTo":"shoes"}}},"response":{"status":200,"body":"query-ok"}}"#
        ),
        (
            "json.json",
            #"{"request":{"method":"POST","urlPath":"/login","bodyPatterns":[{"matchesJsonPath":{"expression":"$.token","matches":"tok_[a-z0-9]+"}},{"matchesJsonPath":{"expression":"$.user","equalTo":"ann"}}]},"response":{"status":200,"body":"json-ok"}}"#
        ),
        (
            "tenant.json",
            #"{"request":{"method":"GET","urlPath":"/tenant","headers":{"Authorization":{"matches":"Bearer .+"},"X-Tenant":{"equalTo":"acme"}}},"response":{"status":200,"body":"tenant-ok"}}"#
        ),
    ]

    /// Each request as the store keeps it: redacted by the default policy.
    static let recorded: [(RecordedRequest, String)] = {
        let raw: [(RecordedRequest, String)] = [
            (
                RecordedRequest(
                    method: "GET", host: "api", port: 80, path: "/me",
                    headers: HeaderFields([("Cookie", "session=s-20231184; theme=dark")])), "cookie-ok"
            ),
            (
                RecordedRequest(
                    method: "GET", host: "api", port: 80, path: "/account",
                    headers: HeaderFields([("Authorization", "Bearer sk_live_9a8b7c6d5e4f")])), "header-ok"
            ),
            (
                RecordedRequest(
                    method: "GET", host: "api", port: 80, path: "/search", query: "q=shoes&api_key=sk_test_4F2K9Q1Z"),
                "query-ok"
            ),
            (
                RecordedRequest(
                    method: "POST", host: "api", port: 80, path: "/login",
                    headers: HeaderFields([("Content-Type", "application/json")]),
                    body: CapturedBody(bytes: Data(#"{"user":"ann","token":"tok_8d7f6e5a4b"}"#.utf8))), "json-ok"
            ),
        ]
        return raw.map { request, body in
            let exchange = Exchange(
                service: "api", request: request, result: .response(RecordedResponse(status: 200)),
                startedAt: Date(timeIntervalSince1970: 0), duration: 0)
            return (RedactionPolicy().redact(exchange).request, body)
        }
    }()

    static func mocksDirectory() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.file("mappings"), withIntermediateDirectories: true)
        for (name, text) in mappings { _ = try directory.write("mappings/\(name)", text) }
        return directory
    }

    @Test func theRecordingsReallyAreRedacted() {
        for (request, _) in Self.recorded {
            let text =
                "\(request.headers) \(request.query ?? "") \(String(decoding: request.body.bytes, as: UTF8.self))"
            for secret in ["20231184", "9a8b7c6d5e4f", "4F2K9Q1Z", "8d7f6e5a4b"] { #expect(!text.contains(secret)) }
        }
    }

    @Test func theBuiltInEngineCountsARedactedValueAsMatched() throws {
        let directory = try Self.mocksDirectory()
        defer { directory.remove() }
        let engine = try WireMockEngine(directory: directory.path, service: "api")
        for (request, expected) in Self.recorded {
            guard case .response(let answer) = engine.respond(to: request) else {
                Issue.record("\(request.method) \(request.target) went unmatched")
                continue
            }
            #expect(String(decoding: answer.body.bytes, as: UTF8.self) == expected)
        }
        // --explain names the matcher a redacted value satisfied.
        let explained = engine.explanations.joined(separator: "\n")
        for part in [
            "cookie.json: cookies.session", "header.json: headers.Authorization", "query.json: queryParameters.api_key",
            "json.json: bodyPatterns[0]",
        ] {
            #expect(explained.contains(part + " matched a redacted value"), "\(explained)")
        }
        // A value that is not redacted still has to match; the miss says what was near.
        var wrongTenant = Self.recorded[1].0
        wrongTenant.path = "/tenant"
        wrongTenant.headers.add("X-Tenant", "globex")
        guard case .unmatched(let reason) = engine.respond(to: wrongTenant) else {
            Issue.record("a wrong X-Tenant matched")
            return
        }
        #expect(reason.contains("nearest: tenant.json failed on headers.X-Tenant"), "\(reason)")
        #expect(reason.contains("the request carried redacted values: header Authorization"), "\(reason)")
    }

    @Test func realWireMockMatchesTheStandInsReplaySends() async throws {
        let directory = try Self.mocksDirectory()
        defer { directory.remove() }
        let wiremock = try await RealWireMock.start(root: directory.path)
        defer { wiremock.stop() }
        let client = wiremock.client()
        for (request, expected) in Self.recorded {
            let sent = MockSession.outgoing(request, replayHeaders: HeaderFields(), overHTTP: true)
            let answer = try client.send(sent)
            #expect(answer.status == 200, "\(request.method) \(request.target): \(answer.status)")
            #expect(String(decoding: answer.body.bytes, as: UTF8.self) == expected)
        }
        // Without stand-ins the markers themselves fail WireMock's patterns.
        let bare = try client.send(Self.recorded[1].0)
        #expect(bare.status == 404)
        // Test credentials from --replay-header / replay: replace the recorded value in place.
        var tenant = Self.recorded[1].0
        tenant.path = "/tenant"
        tenant.headers.add("X-Tenant", "acme")
        let credentials = HeaderFields([("Authorization", "Bearer test-token")])
        let withCredentials = MockSession.outgoing(tenant, replayHeaders: credentials, overHTTP: true)
        #expect(withCredentials.headers.fields.map(\.name) == ["Authorization", "X-Tenant"])
        #expect(withCredentials.headers["authorization"] == "Bearer test-token")
        #expect(try client.send(withCredentials).status == 200)
    }
}
