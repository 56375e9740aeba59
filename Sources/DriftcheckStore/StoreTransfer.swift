import DriftcheckCore
import Foundation

/// Copies exchanges from one store to another page by page: `push`, `pull` and the recorder's
/// outbox are this one loop. Every page is one transaction on the target and exchanges are
/// identified by content hash, so a copy interrupted anywhere is completed by running it again,
/// and running it twice adds nothing.
public enum StoreTransfer {
    public struct Progress: Sendable, Equatable {
        /// Exchanges read from the source so far.
        public var read = 0
        /// How many the filter admits in all (when counted).
        public var total = 0
        /// Exchanges the target did not have.
        public var added = 0
        /// Row id of the last exchange copied, in the source.
        public var lastID: Int64 = 0

        public init() {}
    }

    /// Copies what `filter` admits, calling `progress` after each page (with the page, once the
    /// target has committed it).
    @discardableResult
    public static func copy(
        from source: any RecordingStore, to target: any RecordingStore, filter: TransferFilter = TransferFilter(),
        pageSize: Int = 2000, countFirst: Bool = false,
        progress: (Progress, [StoredExchange]) throws -> Void = { _, _ in }
    ) throws -> Progress {
        var state = Progress()
        if countFirst { state.total = try source.transferCount(filter: filter) }
        // Descriptor sets are few and small: all of them go along, so that gRPC exchanges
        // decode by name wherever they are.
        for set in try source.descriptorSets() { try target.addDescriptorSet(set) }
        var sent = Set<String>()
        while true {
            let page = try source.transferPage(after: state.lastID, limit: pageSize, filter: filter)
            guard let last = page.last?.exchange.id else { break }
            let uids = Set(page.compactMap(\.session)).subtracting(sent)
            let sessions = try source.sessions(uids: uids.sorted())
            state.added += try target.receive(page, sessions: sessions)
            sent.formUnion(uids)
            state.read += page.count
            state.lastID = last
            try progress(state, page)
        }
        return state
    }
}

/// Where a recorder writes when its store is remote: a local SQLite file the proxy's writer
/// fills at disk speed, drained to the remote store by a thread of its own. A slow or
/// unreachable server never holds up traffic; what has not reached it stays in the file (and
/// is sent by the next recorder or `push` using the same outbox) until it has.
// Unchecked: the mutable state is behind `condition`.
public final class Outbox: @unchecked Sendable {
    /// What happened to the outbox's exchanges.
    public struct Report: Sendable, Equatable {
        /// Exchanges that reached the remote store.
        public var shipped = 0
        /// Exchanges still in the local file.
        public var waiting = 0
        /// The last error in reaching the remote store, if the last attempt failed.
        public var error: String?
    }

    public let local: SQLiteStore
    private let connect: @Sendable () throws -> any RecordingStore
    private let interval: Double
    private let maximumBackoff: Double
    private let condition = NSCondition()
    private var stopping = false
    private var stopped = false
    private var report = Report()
    private var remote: (any RecordingStore)?

    /// `connect` opens the remote store; it is called again after every failure.
    public init(
        local: SQLiteStore, interval: Double = 0.5, maximumBackoff: Double = 5,
        connect: @escaping @Sendable () throws -> any RecordingStore
    ) {
        self.local = local
        self.connect = connect
        self.interval = interval
        self.maximumBackoff = maximumBackoff
        let thread = Thread { [self] in run() }
        thread.name = "driftcheck-outbox"
        thread.start()
    }

    public var currentReport: Report {
        condition.lock()
        defer { condition.unlock() }
        return report
    }

    /// Ships what is left, trying until `deadline`, and stops; sessions' end times are sent last.
    public func finish(deadline: Date) -> Report {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped { condition.wait() }
        condition.unlock()
        var delay = 0.2
        while true {
            if (try? ship(sessions: true)) != nil || Date().addingTimeInterval(delay) > deadline { break }
            Thread.sleep(forTimeInterval: delay)
            delay = min(delay * 2, maximumBackoff)
        }
        condition.lock()
        report.waiting = (try? local.count()) ?? report.waiting
        let result = report
        condition.unlock()
        try? remote?.close()
        return result
    }

    /// One pass: everything in the file goes to the remote store, then leaves the file.
    private func ship(sessions: Bool) throws {
        do {
            let target: any RecordingStore
            if let remote {
                target = remote
            } else {
                target = try connect()
                remote = target
            }
            try StoreTransfer.copy(from: local, to: target) { progress, page in
                // Deleting per page keeps the file small however long the server was away. Rows
                // are deleted by id and hash, never by range: another recorder sharing this
                // outbox may have emptied it meanwhile, and SQLite then reuses small ids.
                try local.deleteExchanges(page)
                condition.lock()
                report.shipped += progress.read - shippedInPass
                shippedInPass = progress.read
                condition.unlock()
            }
            shippedInPass = 0
            if sessions { try target.receive([], sessions: try local.allSessions()) }
            condition.lock()
            report.error = nil
            condition.unlock()
        } catch {
            shippedInPass = 0
            try? remote?.close()
            remote = nil
            condition.lock()
            report.error = "\(error)"
            condition.unlock()
            throw error
        }
    }

    private var shippedInPass = 0

    private func run() {
        var delay = interval
        while true {
            condition.lock()
            if !stopping { _ = condition.wait(until: Date().addingTimeInterval(delay)) }
            if stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            condition.unlock()
            do {
                try ship(sessions: false)
                delay = interval
            } catch {
                delay = min(max(delay * 2, 1), maximumBackoff)
            }
        }
    }
}
