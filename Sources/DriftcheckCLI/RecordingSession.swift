import DriftcheckCore
import DriftcheckPostgres
import DriftcheckProxy
import DriftcheckStore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A running recorder: the store, its writer and the proxy's listeners, stopped as one.
final class RecordingSession {
    /// The store as the user named it.
    let location: String
    /// The file the writer fills: the store itself, or the outbox of a remote store.
    let store: SQLiteStore
    /// Sends the outbox to a remote store while recording.
    let outbox: Outbox?
    let writer: StoreWriter
    let proxy: RecordingProxy
    let group: MultiThreadedEventLoopGroup
    let sessionID: Int64
    private(set) var listeners: [(address: ListenAddress, label: String)] = []

    init(
        store location: String, outbox outboxPath: String? = nil, mode: String, command: String?,
        redaction: RedactionPolicy,
        configuration: ProxyConfiguration
    ) throws {
        self.location = location
        if PostgresStore.isURL(location) {
            // A URL that is wrong, or a database that is not ours, stops here; a server that does
            // not answer does not stop recording.
            do {
                try PostgresStore(url: location).close()
            } catch StoreError.unreachable(let path, let detail) {
                Terminal.warning(
                    "\(path): cannot reach the store (\(detail)); recording into \(outboxPath ?? Stores.outboxPath(for: location)) and sending when it answers"
                )
            }
            store = try SQLiteStore(path: outboxPath ?? Stores.outboxPath(for: location))
            outbox = Outbox(local: store) { try PostgresStore(url: location) }
        } else {
            store = try SQLiteStore(path: location)
            outbox = nil
        }
        sessionID = try store.beginSession(mode: mode, command: command, toolVersion: driftcheckVersion)
        let writer = StoreWriter(store: store, session: sessionID, redaction: redaction) { message in
            Terminal.error("\(message); the proxy keeps forwarding but records nothing more")
        }
        self.writer = writer
        group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let grpcServices = self.grpcServices
        proxy = RecordingProxy(group: group, configuration: configuration, waitForRoom: writer.waitForRoom) {
            exchange in
            if exchange.request.headers["content-type"]?.hasPrefix("application/grpc") == true {
                grpcServices.withLockedValue { _ = $0.insert(exchange.service) }
            }
            writer.submit(exchange)
        }
    }

    /// Services that gRPC calls were recorded for.
    private let grpcServices = NIOLockedValueBox<Set<String>>([])

    /// Starts one listener and announces it on stderr in SPEC's format.
    @discardableResult
    func listen(_ address: ListenAddress, route: ListenerRoute) async throws -> ListenAddress {
        let bound: ListenAddress
        do {
            bound = try await proxy.listen(on: address, route: route)
        } catch {
            throw UsageError("--listen \(address): \(error)")
        }
        let label: String
        switch route {
        case .reverse(let service, let upstream): label = "\(service) → \(upstream)"
        case .forward: label = "forward proxy"
        }
        if !bound.isLoopback {
            Terminal.warning("listening on \(bound), which other machines can reach; recordings may hold their traffic")
        }
        Terminal.say("listening on http://\(bound) (\(label))")
        listeners.append((bound, label))
        return bound
    }

    /// Stops accepting, finishes exchanges in flight, flushes the store (and the outbox, trying
    /// for up to `sendFor` seconds) and closes it.
    /// `beforeClosing` gets the store and the services gRPC calls were recorded for, once every
    /// exchange is in it.
    func stop(sendFor: Double = 10, beforeClosing: (SQLiteStore, Set<String>) -> Void = { _, _ in }) async -> (
        StoreWriter.Statistics, Outbox.Report?
    ) {
        let drained = await proxy.shutdown()
        for line in proxy.coverage.lines { Terminal.say("  \(line)") }
        if !drained { Terminal.warning("some exchanges were still in flight at shutdown and were not recorded") }
        let statistics = writer.finish()
        beforeClosing(store, grpcServices.withLockedValue { $0 })
        try? store.endSession(sessionID)
        let report = outbox?.finish(deadline: Date().addingTimeInterval(sendFor))
        try? store.close()
        try? await group.shutdownGracefully()
        return (statistics, report)
    }

    /// The closing lines of a recording: what was recorded where, and what still waits to be sent.
    func summarize(_ statistics: StoreWriter.Statistics, _ report: Outbox.Report?) {
        Terminal.say(Self.summary(statistics, store: PostgresStore.redacted(location)))
        if statistics.dropped > 0 {
            Terminal.warning(
                "\(statistics.dropped) exchanges were not recorded (\(statistics.error ?? "the store could not keep up"))"
            )
        }
        if let report, report.waiting > 0 {
            Terminal.warning(
                "\(report.waiting) exchange\(report.waiting == 1 ? "" : "s") wait in \(store.path) (\(report.error ?? "not sent yet")); the next record with this store, or 'driftcheck push --store \(store.path) --to URL', sends them"
            )
        }
    }

    static func summary(_ statistics: StoreWriter.Statistics, store: String) -> String {
        var line = "recorded \(statistics.written) exchange\(statistics.written == 1 ? "" : "s") in \(store)"
        if statistics.failures > 0 {
            line +=
                " (\(statistics.failures) failed upstream call\(statistics.failures == 1 ? "" : "s"), kept but never used as samples)"
        }
        return line
    }
}

/// Waits for termination signals without letting them kill the process.
enum Signals {
    /// Calls `handler` on every SIGINT/SIGTERM (and SIGHUP) until the returned sources are cancelled.
    static func observe(_ handler: @escaping @Sendable (Int32) -> Void) -> [DispatchSourceSignal] {
        [SIGINT, SIGTERM, SIGHUP].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    /// Returns at the first SIGINT or SIGTERM.
    static func waitForTermination() async -> Int32 {
        let box = SignalBox()
        let number = await withCheckedContinuation { continuation in
            box.set(continuation)
            box.sources = observe { box.resume($0) }
        }
        for source in box.sources { source.cancel() }
        return number
    }
}

// The continuation is behind `lock`; `sources` is set once before any signal can arrive and
// read after the wait ends, on the same task.
private final class SignalBox: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Int32, Never>?
    var sources: [DispatchSourceSignal] = []

    func set(_ continuation: CheckedContinuation<Int32, Never>) {
        lock.withLock { self.continuation = continuation }
    }

    func resume(_ number: Int32) {
        let continuation = lock.withLock {
            defer { self.continuation = nil }
            return self.continuation
        }
        continuation?.resume(returning: number)
    }
}
