import DriftcheckCore
import Foundation

/// The store's single writer: the proxy hands it exchanges without waiting; a background
/// thread redacts them and writes them in batched transactions.
///
/// The queue is bounded twice. Above the soft bound `waitForRoom` asks producers that can
/// wait (the proxy's client connections) to hold their next request until the writer has
/// caught up, so a fast client slows down instead of losing exchanges. The hard bound is
/// what a burst may add before that takes effect; beyond it, or once writing has failed,
/// exchanges are dropped and counted, and forwarding traffic never waits on a broken disk.
// Unchecked: its mutable state is behind one NSCondition, taken by the proxy's event loops
// and the writer thread alike.
public final class StoreWriter: @unchecked Sendable {
    public struct Statistics: Sendable, Equatable {
        public var written = 0
        public var dropped = 0
        public var batches = 0
        public var failures = 0
        /// The first write error, after which recording stopped.
        public var error: String?
    }

    private let store: RecordingStore
    private let session: Int64?
    private let redaction: RedactionPolicy
    private let capacity: Int
    private let byteCapacity: Int
    private let softByteCapacity: Int
    private let batchSize: Int
    private let onError: @Sendable (String) -> Void

    private let condition = NSCondition()
    private var queue = ExchangeQueue()
    /// Body bytes queued or in the batch being written: memory the writer is responsible for.
    private var queuedBytes = 0
    private var closed = false
    private var finished = false
    private var statistics = Statistics()
    private var waiters: [@Sendable () -> Void] = []

    /// `capacity` and `byteCapacity` bound the queue by exchanges and by body bytes held;
    /// producers are asked to wait above half of `capacity` or above `softByteCapacity`.
    public init(
        store: RecordingStore, session: Int64?, redaction: RedactionPolicy, capacity: Int = 65_536,
        byteCapacity: Int = 256 << 20, softByteCapacity: Int = 32 << 20, batchSize: Int = 1024,
        onError: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.store = store
        self.session = session
        self.redaction = redaction
        self.capacity = capacity
        self.byteCapacity = byteCapacity
        self.softByteCapacity = min(softByteCapacity, byteCapacity)
        self.batchSize = batchSize
        self.onError = onError
        let thread = Thread { [self] in run() }
        thread.name = "driftcheck-store-writer"
        thread.start()
    }

    /// Queues an exchange; false when it was dropped because the queue is full or recording stopped.
    @discardableResult
    public func submit(_ exchange: Exchange) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let bytes = Self.bodyBytes(exchange)
        guard !closed, statistics.error == nil, queue.count < capacity, queuedBytes + bytes <= byteCapacity else {
            statistics.dropped += 1
            return false
        }
        queue.append(exchange)
        queuedBytes += bytes
        if case .failure = exchange.result { statistics.failures += 1 }
        // Waking the writer for every exchange would make one-row transactions and a context
        // switch per request; it wakes when work appears and when a batch is full.
        if queue.count == 1 || queue.count == batchSize { condition.signal() }
        return true
    }

    /// True when there is room now. Otherwise false, and the closure `makeResume` returns is
    /// called (on the writer's thread) once the queue has drained to three quarters of the soft bound, or recording
    /// has stopped.
    public func waitForRoom(_ makeResume: () -> @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed, statistics.error == nil,
            queue.count >= capacity / 2 || queuedBytes >= softByteCapacity
        else { return true }
        waiters.append(makeResume())
        return false
    }

    /// Callers must hold the lock; the returned closures are called after unlocking.
    private func takeWaiters(all: Bool) -> [@Sendable () -> Void] {
        guard !waiters.isEmpty,
            all || (queue.count <= capacity * 3 / 8 && queuedBytes <= softByteCapacity * 3 / 4)
        else { return [] }
        defer { waiters.removeAll() }
        return waiters
    }

    public var currentStatistics: Statistics {
        condition.lock()
        defer { condition.unlock() }
        return statistics
    }

    /// Stops accepting, writes everything queued, and returns the final figures.
    public func finish() -> Statistics {
        condition.lock()
        closed = true
        condition.broadcast()
        while !finished { condition.wait() }
        let result = statistics
        condition.unlock()
        return result
    }

    static func bodyBytes(_ exchange: Exchange) -> Int {
        exchange.request.body.bytes.count + (exchange.response?.body.bytes.count ?? 0)
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            // Give a burst a moment to fill the batch: fewer, larger transactions.
            if !closed && queue.count < batchSize {
                _ = condition.wait(until: Date().addingTimeInterval(0.002))
            }
            if queue.isEmpty && closed {
                finished = true
                condition.broadcast()
                let waiting = takeWaiters(all: true)
                condition.unlock()
                for resume in waiting { resume() }
                return
            }
            // A batch is bounded by bytes too, so that big bodies are written (and their memory
            // released) in steps rather than all at once.
            var count = 0
            var batchBytes = 0
            while count < min(batchSize, queue.count) {
                let bytes = Self.bodyBytes(queue[count])
                if count > 0 && batchBytes + bytes > max(softByteCapacity / 4, 1) { break }
                batchBytes += bytes
                count += 1
            }
            let batch = queue.take(count)
            condition.unlock()

            let redacted = batch.map(ExchangeSanitizer(redaction: redaction).sanitize)
            do {
                try store.insert(redacted, session: session)
                condition.lock()
                queuedBytes -= batchBytes
                statistics.written += batch.count
                statistics.batches += 1
                let waiting = takeWaiters(all: closed)
                condition.unlock()
                for resume in waiting { resume() }
            } catch {
                condition.lock()
                let first = statistics.error == nil
                if first { statistics.error = "\(error)" }
                statistics.dropped += batch.count + queue.count
                queue.removeAll()
                queuedBytes = 0
                let waiting = takeWaiters(all: true)
                condition.unlock()
                for resume in waiting { resume() }
                if first { onError("recording stopped: \(error)") }
            }
        }
    }
}

/// The writer's queue: exchanges leave from the front in batches. An array's `removeFirst` moved
/// every exchange still queued for each batch — with the store behind, tens of thousands per
/// batch (6.6 % of `make bench-store`'s samples were that memmove).
struct ExchangeQueue {
    private var items: [Exchange] = []
    /// The index in `items` of the first exchange still queued.
    private var first = 0

    var count: Int { items.count - first }
    var isEmpty: Bool { count == 0 }

    /// The exchange `offset` places from the front.
    subscript(offset: Int) -> Exchange { items[first + offset] }

    mutating func append(_ exchange: Exchange) { items.append(exchange) }

    /// Removes and returns the first `count` exchanges.
    mutating func take(_ count: Int) -> [Exchange] {
        let batch = Array(items[first..<first + count])
        first += count
        if first == items.count {
            items.removeAll(keepingCapacity: true)
            first = 0
        } else if first >= items.count / 2 {
            // Moved once per half of the array: amortised, each exchange at most once.
            items.removeFirst(first)
            first = 0
        }
        return batch
    }

    mutating func removeAll() {
        items.removeAll()
        first = 0
    }
}
