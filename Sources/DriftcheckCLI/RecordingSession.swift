import DriftcheckCore
import DriftcheckProxy
import DriftcheckStore
import Foundation
import NIOCore
import NIOPosix

/// A running recorder: the store, its writer and the proxy's listeners, stopped as one.
final class RecordingSession {
    let store: RecordingStore
    let writer: StoreWriter
    let proxy: RecordingProxy
    let group: MultiThreadedEventLoopGroup
    let sessionID: Int64
    private(set) var listeners: [(address: ListenAddress, label: String)] = []

    init(
        storePath: String, mode: String, command: String?, redaction: RedactionPolicy,
        configuration: ProxyConfiguration
    ) throws {
        store = try RecordingStore(path: storePath)
        sessionID = try store.beginSession(mode: mode, command: command, toolVersion: driftcheckVersion)
        let writer = StoreWriter(store: store, session: sessionID, redaction: redaction) { message in
            Terminal.error("\(message); the proxy keeps forwarding but records nothing more")
        }
        self.writer = writer
        group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        proxy = RecordingProxy(group: group, configuration: configuration, waitForRoom: writer.waitForRoom) {
            exchange in writer.submit(exchange)
        }
    }

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

    /// Stops accepting, finishes exchanges in flight, flushes the store and closes it.
    func stop() async -> StoreWriter.Statistics {
        let drained = await proxy.shutdown()
        for line in proxy.coverage.lines { Terminal.say("  \(line)") }
        if !drained { Terminal.warning("some exchanges were still in flight at shutdown and were not recorded") }
        let statistics = writer.finish()
        try? store.endSession(sessionID)
        try? store.close()
        try? await group.shutdownGracefully()
        return statistics
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
