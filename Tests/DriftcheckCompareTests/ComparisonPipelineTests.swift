import DriftcheckCompare
import DriftcheckCore
import DriftcheckMocks
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import Synchronization
import Testing

/// The comparison pipeline called as a library, the way `compare`, `gate` and `demo` call it:
/// a real store, real mapping files, an injected clock, no command line.
@Suite struct ComparisonPipelineTests {
    static let now = Date(timeIntervalSince1970: 1_796_040_000)  // 2026-11-30T12:00:00Z

    static func exchange(_ path: String, _ body: String, status: Int = 200, daysAgo: Double = 1) -> Exchange {
        Exchange(
            service: "orders",
            request: RecordedRequest(method: "GET", host: "orders", port: 80, path: path),
            result: .response(
                RecordedResponse(
                    status: status, headers: HeaderFields([("Content-Type", "application/json")]),
                    body: CapturedBody(bytes: Data(body.utf8)))),
            startedAt: now.addingTimeInterval(-daysAgo * 86_400), duration: 0.01)
    }

    /// A store with three orders and an old health check, and mocks for `orders` that drift.
    static func fixture() throws -> (TemporaryDirectory, RecordingStore, [String: MockTarget]) {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStore(path: directory.file("recordings.sqlite"))
        try store.insert(
            [
                exchange("/orders/1", #"{"id":1,"total":2.5,"status":"PAID"}"#),
                exchange("/orders/2", #"{"id":2,"total":4.0,"status":"PAID"}"#),
                exchange("/orders/3", #"{"id":3,"total":1.5,"status":"SHIPPED"}"#),
                exchange("/health", #"{"ok":true}"#, daysAgo: 90),
            ], session: nil)
        try FileManager.default.createDirectory(
            atPath: directory.file("mocks/orders/mappings"), withIntermediateDirectories: true)
        _ = try directory.write(
            "mocks/orders/mappings/order.json",
            #"{"request":{"method":"GET","urlPathPattern":"/orders/[0-9]+"},"response":{"status":200,"headers":{"Content-Type":"application/json"},"jsonBody":{"id":1,"total":"2.50","status":"PAID"}}}"#
        )
        _ = try directory.write(
            "mocks/orders/mappings/health.json",
            #"{"request":{"method":"GET","url":"/health"},"response":{"status":200,"headers":{"Content-Type":"application/json"},"jsonBody":{"ok":true}}}"#
        )
        _ = try directory.write(
            "mocks/orders/mappings/refund.json",
            #"{"request":{"method":"POST","urlPathTemplate":"/orders/{orderId}/refunds"},"response":{"status":201}}"#)
        return (directory, store, try MockDirectory.load(directory.file("mocks")))
    }

    static func keys(_ report: Report) -> [String] {
        report.findings.map { "\($0.endpoint) \($0.kind.rawValue) \($0.path)" }.sorted()
    }

    @Test func findsDriftUnverifiedRoutesAndStaleRecordingsWithTheInjectedClock() async throws {
        let (directory, store, mocks) = try Self.fixture()
        defer { directory.remove() }
        var policy = Policy(maxAge: 30 * 86_400)
        policy.evidence = EvidenceThresholds(minSamples: 3, minRequests: 2, enumSamples: 8)
        let progress = ProgressLog()
        let report = try await ComparisonPipeline.run(
            ComparisonInput(store: store, mocks: mocks, policy: policy, now: Self.now)
        ) { done, total in progress.note(done, total) }
        #expect(
            Self.keys(report) == [
                "GET /health stale-recording $", "GET /orders/{id} type $.total",
                "POST /orders/{orderId}/refunds unverified $",
            ])
        #expect(report.summary.exchanges == 4)
        #expect(report.summary.compared == 4)
        #expect(progress.last == [4, 4])
        let type = try #require(report.findings.first { $0.kind == .type })
        #expect(type.exchanges.count == 3)
        #expect(type.evidence == Evidence(realSamples: 3, realDistinct: 3, mockSamples: 3))
        // The same recordings a year later: everything stale; the clock is the caller's.
        let later = try await ComparisonPipeline.run(
            ComparisonInput(store: store, mocks: mocks, policy: policy, now: Self.now.addingTimeInterval(365 * 86_400)))
        #expect(Self.keys(later).filter { $0.contains("stale-recording") }.count == 2)
    }

    @Test func acceptancesExpireByTheInjectedClock() async throws {
        let (directory, store, mocks) = try Self.fixture()
        defer { directory.remove() }
        let policy = Policy(
            accept: [
                Policy.Acceptance(
                    service: "orders", endpoint: "GET /orders/{id}", kind: .type, path: "$.total",
                    reason: "totals become strings in v2", expires: Self.now.addingTimeInterval(86_400))
            ])
        let before = try await ComparisonPipeline.run(
            ComparisonInput(store: store, mocks: mocks, policy: policy, now: Self.now))
        #expect(before.findings.first { $0.kind == .type }?.accepted == "totals become strings in v2")
        let after = try await ComparisonPipeline.run(
            ComparisonInput(store: store, mocks: mocks, policy: policy, now: Self.now.addingTimeInterval(2 * 86_400)))
        #expect(after.findings.first { $0.kind == .type }?.accepted == nil)
    }

    @Test func failuresAreTypedForTheCallerToAct() async throws {
        let (directory, store, _) = try Self.fixture()
        defer { directory.remove() }
        let closed = try freeLoopbackPort()
        do {
            _ = try await ComparisonPipeline.run(
                ComparisonInput(
                    store: store, mocks: ["orders": .running(url: "http://127.0.0.1:\(closed)")], now: Self.now))
            Issue.record("an unreachable mock compared")
        } catch {
            guard case .mockUnreachable(let failure) = error else {
                Issue.record("wrong failure: \(type(of: error)) \(error)")
                return
            }
            #expect(failure.service == "orders")
        }
        try FileManager.default.createDirectory(
            atPath: directory.file("broken/orders/mappings"), withIntermediateDirectories: true)
        _ = try directory.write("broken/orders/mappings/bad.json", "{not json")
        do {
            _ = try await ComparisonPipeline.run(
                ComparisonInput(
                    store: store, mocks: ["orders": .wiremock(directory: directory.file("broken/orders"))],
                    now: Self.now))
            Issue.record("a broken mapping compared")
        } catch {
            guard case .configuration(let message) = error else {
                Issue.record("wrong failure: \(type(of: error)) \(error)")
                return
            }
            #expect(message.contains("bad.json"))
        }
    }

    @Test func aServiceWithoutAMockIsNamedNotCompared() async throws {
        let (directory, store, _) = try Self.fixture()
        defer { directory.remove() }
        let report = try await ComparisonPipeline.run(ComparisonInput(store: store, mocks: [:], now: Self.now))
        #expect(report.findings.isEmpty)
        #expect(report.summary.compared == 0)
        #expect(report.diagnostics.map(\.message) == ["no mock for this service; its 4 exchanges were not compared"])
    }
}

/// The last progress callback, from whichever thread made it.
final class ProgressLog: Sendable {
    private let state = Mutex<[Int]>([])
    func note(_ done: Int, _ total: Int) { state.withLock { $0 = [done, total] } }
    var last: [Int] { state.withLock { $0 } }
}
