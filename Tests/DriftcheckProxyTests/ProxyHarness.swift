import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import DriftcheckProxy
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A real recorder for a test: the proxy on loopback with an OS-assigned port, writing
/// through the real writer into a real SQLite file.
final class ProxyHarness: Sendable {
    let directory: TemporaryDirectory
    let store: SQLiteStore
    let writer: StoreWriter
    let proxy: RecordingProxy
    let port: Int
    /// The proxy's own event loops, as in a recorder process of its own: on the loops the tests'
    /// clients and upstreams share, one test's load (3,000 gRPC calls in a debug build) held
    /// them for seconds at a time and another test's upstream "sent nothing for 30 s".
    let group: MultiThreadedEventLoopGroup

    /// Times the proxy was asked to hold a client until the store had room.
    let waits: NIOLockedValueBox<Int>
    /// What the writer reported (recording stopped…).
    let messages: NIOLockedValueBox<[String]>

    static func start(
        _ route: ListenerRoute, configuration: ProxyConfiguration = ProxyConfiguration(),
        redaction: RedactionPolicy = RedactionPolicy(), storeBytes: (soft: Int, hard: Int)? = nil,
        prepareStore: (SQLiteStore) throws -> Void = { _ in }
    ) async throws -> ProxyHarness {
        let directory = try TemporaryDirectory()
        let store = try SQLiteStore(path: directory.file("recordings.sqlite"))
        try prepareStore(store)
        let messages = NIOLockedValueBox<[String]>([])
        let report: @Sendable (String) -> Void = { message in messages.withLockedValue { $0.append(message) } }
        let writer =
            storeBytes.map {
                StoreWriter(
                    store: store, session: nil, redaction: redaction, byteCapacity: $0.hard,
                    softByteCapacity: $0.soft, onError: report)
            } ?? StoreWriter(store: store, session: nil, redaction: redaction, onError: report)
        let waits = NIOLockedValueBox(0)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let proxy = RecordingProxy(
            group: group, configuration: configuration,
            waitForRoom: { makeResume in
                let room = writer.waitForRoom(makeResume)
                if !room { waits.withLockedValue { $0 += 1 } }
                return room
            },
            sink: { writer.submit($0) })
        let bound = try await proxy.listen(on: ListenAddress(host: "127.0.0.1", port: 0), route: route)
        return ProxyHarness(
            directory: directory, store: store, writer: writer, proxy: proxy, port: bound.port, group: group,
            waits: waits, messages: messages)
    }

    /// A reverse-proxy harness in front of `upstream`, recorded as `service`.
    static func reverse(
        to upstream: LoopbackHTTPServer, service: String = "orders",
        configuration: ProxyConfiguration = ProxyConfiguration(), redaction: RedactionPolicy = RedactionPolicy(),
        storeBytes: (soft: Int, hard: Int)? = nil, prepareStore: (SQLiteStore) throws -> Void = { _ in }
    ) async throws -> ProxyHarness {
        try await start(
            .reverse(service: service, upstream: UpstreamURL.parse(upstream.baseURL)!), configuration: configuration,
            redaction: redaction, storeBytes: storeBytes, prepareStore: prepareStore)
    }

    private init(
        directory: TemporaryDirectory, store: SQLiteStore, writer: StoreWriter, proxy: RecordingProxy, port: Int,
        group: MultiThreadedEventLoopGroup, waits: NIOLockedValueBox<Int>, messages: NIOLockedValueBox<[String]>
    ) {
        self.group = group
        self.waits = waits
        self.messages = messages
        self.directory = directory
        self.store = store
        self.writer = writer
        self.proxy = proxy
        self.port = port
    }

    func send(_ request: ClientRequest, timeout: TimeAmount = .seconds(60)) async throws -> ClientResponse {
        try await LoopbackHTTPClient.send(request, port: port, group: testGroup, timeout: timeout)
    }

    /// `connections` keep-alive client connections at once, connection `n` sending
    /// `requests(n)` in order; the responses of all, in no particular order across connections.
    func sendConcurrently(
        connections: Int, _ requests: @escaping @Sendable (Int) -> [ClientRequest]
    ) async throws -> [ClientResponse] {
        let port = self.port
        return try await withThrowingTaskGroup(of: [ClientResponse].self) { group in
            for connection in 0..<connections {
                group.addTask { try await LoopbackHTTPClient.send(requests(connection), port: port, group: testGroup) }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }

    /// `text` sent on a new connection; what came back until the proxy closed it. The timeout is
    /// a margin for a loaded machine (every caller's answer ends with a close).
    func raw(_ text: String, timeout: TimeAmount = .seconds(60)) async throws -> String {
        try await LoopbackHTTPClient.raw(Array(text.utf8), port: port, group: testGroup, timeout: timeout)
    }

    /// Stops the proxy, flushes the writer and returns what was stored. The wait for exchanges
    /// in flight ends as soon as they do; its bound is a margin for a loaded machine (5 s was
    /// not enough for an exchange still noticing its cut-off upstream, with a build beside).
    func finish() async throws -> [Exchange] {
        _ = await proxy.shutdown(timeout: .seconds(60))
        _ = writer.finish()
        return try store.exchanges()
    }

    /// Removes the files and stops the proxy's loops (closing whatever is still open).
    func remove() {
        directory.remove()
        group.shutdownGracefully { _ in }
    }
}

/// hyper-h2's h2c server (`fixtures/h2/h2c_server.py`): answers without a length, in frames,
/// with trailers; sends its SETTINGS as soon as it accepts a connection.
struct HyperH2Server {
    let process: ChildProcess
    let port: Int

    /// The server, listening; nil if it did not start.
    static func start(in directory: TemporaryDirectory) async throws -> HyperH2Server? {
        let log = directory.file("h2c.log")
        let process = try ChildProcess.spawn(
            ["python3", Fixtures.path("h2/h2c_server.py")], environment: ProcessInfo.processInfo.environment,
            outputPath: log)
        guard let port = await announcedPort(in: log) else {
            process.signalGroup(SIGKILL)
            return nil
        }
        return HyperH2Server(process: process, port: port)
    }

    func stop() { process.signalGroup(SIGKILL) }
}
