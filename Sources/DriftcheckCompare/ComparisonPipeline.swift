import DriftcheckCore
import DriftcheckGRPC
import DriftcheckMocks
import DriftcheckReplay
import DriftcheckStore
import Foundation
import Synchronization

/// Everything one comparison needs; the CLI maps its options to this.
public struct ComparisonInput: Sendable {
    /// Where the recordings are.
    public var store: any RecordingStore
    /// Services to compare; empty for every recorded one.
    public var services: [String]
    /// How each service's mock is reached.
    public var mocks: [String: MockTarget]
    public var policy: Policy
    /// Requests in flight per service; 1 keeps recorded order, which stateful mocks need.
    public var parallel: Int
    /// Seconds to wait for each mock answer.
    public var timeout: Double
    /// Headers sent to mocks instead of the recorded ones (`--replay-header` and `replay:`).
    public var replayHeaders: HeaderFields
    /// Keep the reasons for differences treated as noise.
    public var explain: Bool
    /// The comparison's clock: staleness, acceptance expiry, `now` in date matchers.
    public var now: Date

    public init(
        store: any RecordingStore, services: [String] = [], mocks: [String: MockTarget], policy: Policy = Policy(),
        parallel: Int = 1, timeout: Double = 30, replayHeaders: HeaderFields = HeaderFields(), explain: Bool = false,
        now: Date
    ) {
        self.store = store
        self.services = services
        self.mocks = mocks
        self.policy = policy
        self.parallel = parallel
        self.timeout = timeout
        self.replayHeaders = replayHeaders
        self.explain = explain
        self.now = now
    }
}

/// Why a comparison could not be made; drift is never one of these.
public enum ComparisonFailure: Error, CustomStringConvertible, Sendable {
    /// A mock file or `mock.yml` is not usable (exit 2).
    case configuration(String)
    /// A `mock.yml` command did not come up (exit 3).
    case mockDidNotStart(MockStartFailure)
    /// A running mock did not answer (exit 3).
    case mockUnreachable(MockUnreachable)
    /// The store could not be read.
    case store(String)

    public var description: String {
        switch self {
        case .configuration(let message), .store(let message): return message
        case .mockDidNotStart(let failure): return failure.description
        case .mockUnreachable(let failure): return failure.description
        }
    }
}

/// The comparison as a library call: recordings and mocks in, a report out. `compare`, `gate`
/// and `demo` call it; tests call it without the command line.
public enum ComparisonPipeline {
    /// Exchanges per page: memory holds one page and the learned shapes, not the whole store.
    static let pageSize = 2_000

    /// Replays every recorded service that has a mock, learns what the real service sent,
    /// judges the mocks' answers, adds `unverified` and `stale-recording`, applies the policy.
    /// `progress` gets (exchanges replayed so far, exchanges to replay).
    public static func run(
        _ input: ComparisonInput, progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }
    ) async throws(ComparisonFailure) -> Report {
        let store = input.store
        var recorded: [(name: String, exchanges: Int)]
        do { recorded = try store.services() } catch { throw .store("\(error)") }
        if !input.services.isEmpty { recorded = recorded.filter { input.services.contains($0.name) } }
        let services = recorded.map(\.name)
        let total = recorded.reduce(0) { $0 + $1.exchanges }
        var diagnostics: [Diagnostic] = []
        for service in recorded where input.mocks[service.name] == nil {
            diagnostics.append(
                Diagnostic(
                    service: service.name,
                    message: "no mock for this service; its \(service.exchanges) exchanges were not compared"))
        }
        let session = MockSession(timeout: input.timeout, replayHeaders: input.replayHeaders, now: input.now)
        do {
            try await session.start(input.mocks, services: services)
        } catch let failure as MockStartFailure {
            throw .mockDidNotStart(failure)
        } catch let error as MockConfigurationError {
            throw .configuration(error.description)
        } catch {
            throw .configuration("\(error)")
        }
        let toReplay = recorded.filter { session.hasMock(for: $0.name) }.reduce(0) { $0 + $1.exchanges }
        let counter = Counter()
        var findings: [Finding] = []
        var explanations: [String] = []
        var compared = 0
        do {
            for service in services where session.hasMock(for: service) {
                let result = try await compare(service: service, session: session, input: input) { count in
                    progress(counter.add(count), toReplay)
                }
                findings += result.findings
                explanations += result.explanations
                diagnostics += result.diagnostics
                compared += result.compared
            }
        } catch let failure as ComparisonFailure {
            await session.stop()
            throw failure
        } catch let failure as MockUnreachable {
            await session.stop()
            throw .mockUnreachable(failure)
        } catch {
            await session.stop()
            throw .store("\(error)")
        }
        await session.stop()
        let outcome = input.policy.apply(findings, now: input.now)
        return Report(
            exchanges: total, compared: compared, services: services.count, findings: outcome.findings,
            diagnostics: diagnostics, explanations: input.explain ? explanations + outcome.explanations : [])
    }

    /// One service: two passes page by page — learn what the real service sent, then judge the
    /// mock's answers — then the routes no recording exercised and the stale endpoints.
    static func compare(
        service: String, session: MockSession, input: ComparisonInput, progress: @escaping @Sendable (Int) -> Void
    ) async throws -> Differ.Result {
        let store = input.store
        let analysis = Differ.ServiceAnalysis(
            service: service, explain: input.explain, thresholds: input.policy.evidence)
        let catalog = try store.catalog(service: service, declared: session.engines[service]?.declaredRoutes ?? [])
        // gRPC messages decode by name when descriptors were recorded; otherwise by field number.
        let schema = DescriptorSets.schema(merging: try store.descriptorSets())
        var newest: [String: Date] = [:]
        try await forEachPage(
            store, service: service,
            prepare: { $0.map { Differ.prepareLearning($0, catalog: catalog, schema: schema) } },
            each: { page in
                for prepared in page {
                    analysis.learn(prepared)
                    newest[prepared.endpoint] = max(
                        newest[prepared.endpoint] ?? .distantPast, prepared.exchange.startedAt)
                }
            })
        let workers = input.parallel
        try await forEachPage(
            store, service: service,
            prepare: { page in
                try await session.replay(service: service, exchanges: page, workers: workers, progress: progress)
                    .map { replayed in
                        // A mock may compress its gRPC messages where reality did not (or the
                        // reverse): both are compared as plain messages.
                        var item = replayed
                        if case .response(let answer) = item.answer {
                            item.answer = .response(GRPCDecompression.decoded(answer))
                        }
                        return Differ.prepareJudging(item, catalog: catalog, schema: schema)
                    }
            },
            each: { replayed in
                for item in replayed { analysis.judge(item) }
            })
        var result = analysis.finish()
        if let engine = session.engines[service] {
            result.diagnostics += engine.engineDiagnostics
            result.explanations += engine.explanations.map { "\(service) \($0)" }
            for stub in engine.unusedStubs {
                result.findings.append(
                    Finding(
                        service: service, endpoint: stub.endpoint(in: catalog), kind: .unverified, path: "$",
                        message: "no recording exercises this mock route (\((stub.file as NSString).lastPathComponent))"
                    ))
            }
        }
        result.findings += staleness(service: service, newest: newest, maxAge: input.policy.maxAge, now: input.now)
        return result
    }

    /// Hands `body` the pages of `service` in recorded order, each passed through `prepare`
    /// (a replay, say). The next page is read and prepared while `body` works on this one, so
    /// both cores work; pages are still prepared one after another, in order.
    static func forEachPage<Prepared: Sendable>(
        _ store: any RecordingStore, service: String,
        prepare: @escaping @Sendable ([Exchange]) async throws -> Prepared,
        each body: (Prepared) throws -> Void
    ) async throws {
        let size = pageSize
        let fetch: @Sendable (Int64) async throws -> (Int64, Prepared)? = { afterID in
            let page = try store.exchanges(service: service, after: afterID, limit: size)
            guard let last = page.last?.id else { return nil }
            return (last, try await prepare(page))
        }
        var next = Task { try await fetch(0) }
        defer { next.cancel() }
        while let (last, prepared) = try await next.value {
            next = Task { try await fetch(last) }
            try body(prepared)
        }
    }

    /// `stale-recording` for endpoints whose newest recording is older than `max-age`.
    static func staleness(service: String, newest: [String: Date], maxAge: TimeInterval?, now: Date) -> [Finding] {
        guard let maxAge else { return [] }
        let limit = now.addingTimeInterval(-maxAge)
        return newest.filter { $0.value < limit }.sorted { $0.key < $1.key }.map { endpoint, date in
            let days = Int(now.timeIntervalSince(date) / 86_400)
            return Finding(
                service: service, endpoint: endpoint, kind: .staleRecording, path: "$",
                message:
                    "the newest recording is \(days) day\(days == 1 ? "" : "s") old, older than max-age; record it again",
                real: .string(ISO8601DateFormatter().string(from: date)))
        }
    }

    /// Exchanges replayed so far, across the replay threads.
    final class Counter: Sendable {
        private let value = Mutex(0)
        func add(_ count: Int) -> Int {
            value.withLock {
                $0 += count
                return $0
            }
        }
    }
}
