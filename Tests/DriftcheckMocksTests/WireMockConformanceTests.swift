import DriftcheckCore
import DriftcheckProcess
import DriftcheckReplay
import DriftcheckTestSupport
import Foundation
import Testing

@testable import DriftcheckMocks

#if canImport(Glibc)
    import Glibc
#endif

/// The built-in engine against the real WireMock 2.35 standalone jar that the PyPI package
/// `wiremock` ships: same corpus of mappings, same requests, same answers.
@Suite(.serialized) struct WireMockConformanceTests {
    static let corpus = Fixtures.path("wiremock-conformance")

    /// Headers both must agree on; the rest (Date, Server, Matched-Stub-Id…) are WireMock's own.
    static let compared = ["content-type", "location", "retry-after", "x-result"]

    struct CorpusRequest: Decodable {
        var method: String
        var target: String
        var headers: [[String]]?
        var body: String?
    }

    @Test func theBuiltInEngineAnswersLikeRealWireMock() async throws {
        let wiremock = try await RealWireMock.start(root: Self.corpus)
        defer { wiremock.stop() }
        let client = wiremock.client()

        let engine = try WireMockEngine(directory: Self.corpus, service: "conformance")
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/requests.json"))
        let requests = try JSONDecoder().decode([CorpusRequest].self, from: data)
        #expect(requests.count >= 40)
        var unmatched = 0
        for item in requests {
            let parts = item.target.split(separator: "?", maxSplits: 1).map(String.init)
            let request = RecordedRequest(
                method: item.method, host: "127.0.0.1", port: wiremock.port, path: parts[0],
                query: parts.count > 1 ? parts[1] : nil,
                headers: HeaderFields((item.headers ?? []).map { ($0[0], $0[1]) }),
                body: CapturedBody(bytes: Data((item.body ?? "").utf8)))
            let real = try client.send(request)
            let label = "\(item.method) \(item.target)"
            switch engine.respond(to: request) {
            case .cannotEvaluate(let reason):
                Issue.record("\(label): the engine cannot evaluate a corpus mapping: \(reason)")
            case .unmatched:
                unmatched += 1
                #expect(real.status == 404, "\(label): WireMock matched (\(real.status)) where the engine did not")
            case .response(let ours):
                #expect(ours.status == real.status, "\(label): status")
                for name in Self.compared {
                    #expect(ours.headers[name] == real.headers[name], "\(label): header \(name)")
                }
                let same: Bool
                if let a = try? JSONValue.parse(ours.body.bytes), let b = try? JSONValue.parse(real.body.bytes) {
                    same = a == b
                } else {
                    same = ours.body.bytes == real.body.bytes
                }
                #expect(
                    same,
                    "\(label): body ours=\(String(decoding: ours.body.bytes, as: UTF8.self)) real=\(String(decoding: real.body.bytes, as: UTF8.self))"
                )
            }
        }
        // The corpus exercises misses too, and WireMock must agree on each.
        #expect(unmatched >= 10)
    }
}
