import DriftcheckCore
import DriftcheckReplay
import Foundation

/// The mocks of one comparison, started and ready to answer replayed requests.
public final class MockSession: @unchecked Sendable {
    public private(set) var engines: [String: WireMockEngine] = [:]
    public private(set) var urls: [String: String] = [:]
    private var processes: [RunningMock] = []
    public let timeout: Double
    /// Credentials a mock expects (`--replay-header`, `replay:`): they replace recorded headers
    /// of the same name on the way to the mock and go nowhere else.
    public let replayHeaders: HeaderFields

    /// The clock WireMock date matchers read `now` from.
    public let now: Date

    public init(timeout: Double = 30, replayHeaders: HeaderFields = HeaderFields(), now: Date = Date()) {
        self.timeout = timeout
        self.replayHeaders = replayHeaders
        self.now = now
    }

    /// The request a mock receives: the recorded one with the replay headers in place, and for
    /// an HTTP mock stand-ins of the recorded shape where values were redacted.
    public static func outgoing(_ recorded: RecordedRequest, replayHeaders: HeaderFields, overHTTP: Bool)
        -> RecordedRequest
    {
        var request = overHTTP ? StandIns.request(recorded) : recorded
        for field in replayHeaders {
            if let index = request.headers.fields.firstIndex(where: { ASCII.equalsIgnoringCase($0.name, field.name) }) {
                request.headers.remove(field.name)
                request.headers.fields.insert(field, at: min(index, request.headers.fields.count))
            } else {
                request.headers.add(field.name, field.value)
            }
        }
        return request
    }

    /// Loads WireMock engines and starts `mock.yml` commands for `services`. A command that
    /// does not come up throws `MockStartFailure`, after stopping the ones already started.
    public func start(_ targets: [String: MockTarget], services: [String]) async throws {
        for service in services {
            guard let target = targets[service] else { continue }
            switch target {
            case .running(let url):
                urls[service] = url
            case .wiremock(let directory):
                engines[service] = try WireMockEngine(directory: directory, service: service, now: now)
            case .process(let spec):
                do {
                    let running = try await RunningMock.start(service: service, spec: spec)
                    processes.append(running)
                    urls[service] = running.url
                } catch {
                    await stop()
                    throw error
                }
            }
        }
    }

    public func hasMock(for service: String) -> Bool { engines[service] != nil || urls[service] != nil }

    /// Replays `exchanges` (one service, recorded order) on `workers` threads; with one worker
    /// the order is kept, which stateful mocks need.
    public func replay(
        service: String, exchanges: [Exchange], workers: Int, progress: @escaping @Sendable (Int) -> Void
    ) async throws -> [ReplayedExchange] {
        let engine = engines[service]
        let url = urls[service]
        let timeout = self.timeout
        let replayHeaders = self.replayHeaders
        let results = ResultSlots(count: exchanges.count)
        let next = ResultSlots.Counter()
        let workerCount = max(1, min(workers, exchanges.count))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<workerCount {
                group.addTask {
                    try await onThread {
                        let client = url.map { CurlClient(service: service, baseURL: $0, timeout: timeout) }
                        while let index = next.take(below: exchanges.count) {
                            let recorded = exchanges[index].request
                            let answer: MockAnswer
                            if let engine {
                                answer = engine.respond(
                                    to: Self.outgoing(recorded, replayHeaders: replayHeaders, overHTTP: false))
                            } else if let client {
                                answer = .response(
                                    try client.send(
                                        Self.outgoing(recorded, replayHeaders: replayHeaders, overHTTP: true)))
                            } else {
                                answer = .unmatched("no mock for service \(service)")
                            }
                            results.set(index, ReplayedExchange(exchange: exchanges[index], answer: answer))
                            progress(1)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return results.values()
    }

    /// Stops every started command and its children.
    public func stop() async {
        for process in processes { await process.stop() }
        processes.removeAll()
    }
}

/// Runs blocking work (libcurl) on a thread of its own instead of a cooperative one.
func onThread(_ work: @escaping @Sendable () throws -> Void) async throws {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
        let thread = Thread {
            do {
                try work()
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

final class ResultSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [ReplayedExchange?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: ReplayedExchange) { lock.withLock { slots[index] = value } }
    func values() -> [ReplayedExchange] { lock.withLock { slots.compactMap { $0 } } }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var next = 0
        func take(below limit: Int) -> Int? {
            lock.withLock {
                guard next < limit else { return nil }
                defer { next += 1 }
                return next
            }
        }
    }
}
