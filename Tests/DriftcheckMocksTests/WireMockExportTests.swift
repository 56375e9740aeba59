import DriftcheckCore
import DriftcheckMocks
import DriftcheckTestSupport
import Foundation
import Testing

/// Exported mocks answer every recorded request as the real service did, in recorded order.
@Suite struct WireMockExportTests {
    static func exchange(_ id: Int64, _ method: String, _ path: String, status: Int, body: String, auth: Bool)
        -> Exchange
    {
        var headers = HeaderFields()
        if auth { headers.add("Authorization", "Bearer <redacted~~a32>") }
        return Exchange(
            id: id, service: "api",
            request: RecordedRequest(method: method, host: "api", port: 80, path: path, headers: headers),
            result: .response(
                RecordedResponse(
                    status: status, headers: HeaderFields([("Content-Type", "application/json")]),
                    body: CapturedBody(bytes: Data(body.utf8)))),
            startedAt: Date(timeIntervalSince1970: Double(id)), duration: 0)
    }

    @Test func repeatedRequestsReplayEveryRecordedAnswerInOrder() throws {
        // Authorized listings that grow, unauthorized ones refused, then authorized again.
        let recorded = [
            Self.exchange(1, "GET", "/api/contents", status: 200, body: #"{"content":[]}"#, auth: true),
            Self.exchange(2, "GET", "/api/contents", status: 200, body: #"{"content":[{"name":"a"}]}"#, auth: true),
            Self.exchange(3, "GET", "/api/contents", status: 403, body: #"{"message":"Forbidden"}"#, auth: false),
            Self.exchange(4, "GET", "/api/contents", status: 403, body: #"{"message":"Forbidden"}"#, auth: false),
            Self.exchange(5, "DELETE", "/api/contents/a", status: 204, body: "", auth: true),
            Self.exchange(
                6, "DELETE", "/api/contents/a", status: 404, body: #"{"message":"No such file"}"#, auth: true),
            Self.exchange(7, "GET", "/api/contents", status: 200, body: #"{"content":[]}"#, auth: true),
        ]
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("mappings"), withIntermediateDirectories: true)
        let mappings = WireMockExport.mappings(for: recorded)
        for (name, mapping) in mappings { _ = try directory.write("mappings/\(name)", mapping.prettyPrinted()) }
        // Unauthorized requests are told apart by the header's absence, not by a scenario.
        let texts = mappings.map { $0.mapping.prettyPrinted() }
        #expect(texts.contains { $0.contains("\"absent\": true") })
        let engine = try WireMockEngine(directory: directory.path, service: "api")
        for exchange in recorded {
            guard case .response(let answer) = engine.respond(to: exchange.request) else {
                Issue.record("exchange \(exchange.id!) unmatched")
                continue
            }
            #expect(answer.status == exchange.response!.status, "exchange \(exchange.id!)")
            #expect(answer.body.bytes == exchange.response!.body.bytes, "exchange \(exchange.id!)")
        }
        // The same recordings export to the same files.
        #expect(WireMockExport.mappings(for: recorded).map(\.name) == mappings.map(\.name))
    }
}
