import DriftcheckCore
import Foundation
import Testing

/// A mock that answers exactly what the real service answered shows no drift: every recorded
/// exchange of every fixture recording (real applications nobody here wrote) compared with
/// itself gives zero findings.
@Suite struct SelfComparisonTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    static func recordings() throws -> [(String, [Exchange])] {
        let directory = fixtures.appendingPathComponent("real")
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".har") }
            .sorted().map { name in
                let data = try Data(contentsOf: directory.appendingPathComponent(name))
                return (name, try HAR.decode(data))
            }
    }

    @Test func everyRecordedBodyComparedWithItselfIsNoDrift() throws {
        let recordings = try Self.recordings()
        #expect(recordings.count >= 2)
        for (name, exchanges) in recordings {
            #expect(exchanges.count >= 100, "\(name)")
            let replayed = exchanges.enumerated().map { index, exchange in
                var numbered = exchange
                numbered.id = Int64(index + 1)
                return ReplayedExchange(exchange: numbered, answer: .response(exchange.response!))
            }
            for service in Set(exchanges.map(\.service)) {
                let result = Differ().compare(
                    service: service, replayed: replayed.filter { $0.exchange.service == service })
                #expect(
                    result.findings.isEmpty,
                    "\(name): \(result.findings.map { "\($0.endpoint) \($0.kind.rawValue) \($0.path)" })")
                #expect(result.compared == replayed.filter { $0.exchange.service == service }.count)
            }
        }
    }

    /// The same bodies with their array elements in another order, one element at a time:
    /// elements of different shapes in one list are no drift either.
    @Test func everyBodyAgainstItsOwnElementsInAnotherOrderIsNoDrift() throws {
        for (name, exchanges) in try Self.recordings() {
            let replayed = exchanges.enumerated().map { index, exchange -> ReplayedExchange in
                var numbered = exchange
                numbered.id = Int64(index + 1)
                var answer = exchange.response!
                if let body = try? JSONValue.parse(answer.body.bytes) {
                    answer.body = CapturedBody(bytes: Data(Self.reversedArrays(body).serialized().utf8))
                }
                return ReplayedExchange(exchange: numbered, answer: .response(answer))
            }
            for service in Set(exchanges.map(\.service)) {
                let result = Differ().compare(
                    service: service, replayed: replayed.filter { $0.exchange.service == service })
                let shapes = result.findings.filter { [.phantomField, .missingField, .type].contains($0.kind) }
                #expect(shapes.isEmpty, "\(name): \(shapes.map { "\($0.endpoint) \($0.kind.rawValue) \($0.path)" })")
            }
        }
    }

    static func reversedArrays(_ value: JSONValue) -> JSONValue {
        switch value {
        case .array(let items): return .array(items.reversed().map(reversedArrays))
        case .object(let members): return .object(members.map { ($0.key, reversedArrays($0.value)) })
        default: return value
        }
    }
}
