import DriftcheckCore
import DriftcheckGRPC
import DriftcheckReplay
import Foundation
import Synchronization

/// The mocks of one comparison, started and ready to answer replayed requests.
public final class MockSession: Sendable {
    /// Filled by `start`, emptied of processes by `stop`; replay threads read it.
    private struct State {
        var engines: [String: WireMockEngine] = [:]
        /// Descriptors beside gRPC-extension mappings (`MOCKS/NAME/grpc/*.dsc`).
        var schemas: [String: ProtoSchema] = [:]
        var urls: [String: String] = [:]
        var processes: [RunningMock] = []
    }
    private let state = Mutex(State())

    public var engines: [String: WireMockEngine] { state.withLock { $0.engines } }
    var schemas: [String: ProtoSchema] { state.withLock { $0.schemas } }
    public var urls: [String: String] { state.withLock { $0.urls } }
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
                state.withLock { $0.urls[service] = url }
            case .wiremock(let directory):
                let engine = try WireMockEngine(directory: directory, service: service, now: now)
                let schema = try Self.grpcDescriptors(in: directory)
                state.withLock {
                    $0.engines[service] = engine
                    $0.schemas[service] = schema
                }
            case .process(let spec):
                do {
                    let running = try await RunningMock.start(service: service, spec: spec)
                    state.withLock {
                        $0.processes.append(running)
                        $0.urls[service] = running.url
                    }
                } catch {
                    await stop()
                    throw error
                }
            }
        }
    }

    /// The descriptor files in `MOCKS/NAME/grpc/` (as WireMock's gRPC extension reads them), merged.
    static func grpcDescriptors(in directory: String) throws -> ProtoSchema? {
        let folder = (directory as NSString).appendingPathComponent("grpc")
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return nil }
        var merged: ProtoSchema?
        for name in names.sorted() where name.hasSuffix(".dsc") || name.hasSuffix(".desc") {
            let path = (folder as NSString).appendingPathComponent(name)
            guard let bytes = FileManager.default.contents(atPath: path) else {
                throw MockConfigurationError("\(path): cannot read the file")
            }
            do {
                var schema = merged ?? ProtoSchema()
                schema.merge(try DescriptorSets.schema(bytes))
                merged = schema
            } catch {
                throw MockConfigurationError("\(path): \(error)")
            }
        }
        return merged
    }

    public func hasMock(for service: String) -> Bool { engines[service] != nil || urls[service] != nil }

    /// Replays `exchanges` (one service, recorded order) on `workers` threads; with one worker
    /// the order is kept, which stateful mocks need.
    public func replay(
        service: String, exchanges: [Exchange], workers: Int, progress: @escaping @Sendable (Int) -> Void
    ) async throws -> [ReplayedExchange] {
        let engine = engines[service]
        let schema = schemas[service]
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
                            if let engine, let schema, let json = GRPC.jsonRequest(recorded, schema: schema) {
                                // WireMock's gRPC extension: stubs see and answer JSON.
                                let stubAnswer = engine.respond(
                                    to: Self.outgoing(json, replayHeaders: replayHeaders, overHTTP: false))
                                if case .response(let response) = stubAnswer {
                                    answer = .response(GRPC.viewOfStubAnswer(response, to: recorded, schema: schema))
                                } else {
                                    answer = stubAnswer
                                }
                            } else if let engine {
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
        let processes = state.withLock { state in
            defer { state.processes.removeAll() }
            return state.processes
        }
        for process in processes { await process.stop() }
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

final class ResultSlots: Sendable {
    private let slots: Mutex<[ReplayedExchange?]>

    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }

    func set(_ index: Int, _ value: ReplayedExchange) { slots.withLock { $0[index] = value } }
    func values() -> [ReplayedExchange] { slots.withLock { $0.compactMap { $0 } } }

    final class Counter: Sendable {
        private let next = Mutex(0)
        func take(below limit: Int) -> Int? {
            next.withLock { next in
                guard next < limit else { return nil }
                defer { next += 1 }
                return next
            }
        }
    }
}
