import DriftcheckCore
import DriftcheckTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import DriftcheckStore

@Suite struct StoreWriterTests {
    @Test func writesEverythingSubmittedFromManyThreadsInBatches() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("s.sqlite"))
        let writer = StoreWriter(store: store, session: nil, redaction: RedactionPolicy(), capacity: 100_000)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for index in 0..<1_000 { writer.submit(sampleExchange(path: "/orders/\(worker * 1000 + index)")) }
                }
            }
        }
        let statistics = writer.finish()
        #expect(statistics.written == 8_000)
        #expect(statistics.dropped == 0)
        #expect(statistics.batches < 8_000)
        #expect(try store.count() == 8_000)
        #expect(!writer.submit(sampleExchange()))
    }

    /// Batches leave the queue in the order exchanges came, however appends and takes interleave.
    @Test func theQueueGivesBatchesInOrder() {
        var queue = ExchangeQueue()
        var next = 0
        var taken: [String] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            for _ in 0..<Int.random(in: 0...40, using: &generator) {
                queue.append(sampleExchange(path: "/\(next)"))
                next += 1
            }
            let count = Int.random(in: 0...min(queue.count, 50), using: &generator)
            let batch = queue.take(count)
            #expect(batch.count == count)
            taken += batch.map(\.request.path)
        }
        taken += queue.take(queue.count).map(\.request.path)
        #expect(queue.isEmpty)
        #expect(taken == (0..<next).map { "/\($0)" })
    }

    @Test func redactsBeforeWriting() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("s.sqlite")
        let store = try SQLiteStore(path: path)
        let writer = StoreWriter(store: store, session: nil, redaction: RedactionPolicy())
        var exchange = sampleExchange(body: #"{"token":"tok-SECRET-1"}"#)
        exchange.request.headers.add("Authorization", "Basic U0VDUkVULTI=")
        writer.submit(exchange)
        _ = writer.finish()
        let stored = try store.exchanges()[0]
        #expect(normalizedMarkers(stored.request.headers["authorization"]) == "Basic <redacted>")
        #expect(
            normalizedMarkers(String(decoding: stored.response!.body.bytes, as: UTF8.self))
                == #"{"token":"<redacted:string>"}"#)
    }

    @Test func aFullDiskStopsRecordingLoudlyWithoutCrashing() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("s.sqlite"))
        // A tiny page budget stands in for a full disk.
        try store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 40") }
        let messages = NIOLockedValueBox<[String]>([])
        let writer = StoreWriter(store: store, session: nil, redaction: RedactionPolicy(), batchSize: 16) { message in
            messages.withLockedValue { $0.append(message) }
        }
        for index in 0..<500 {
            writer.submit(sampleExchange(path: "/orders/\(index)", body: String(repeating: "y", count: 4000)))
        }
        let statistics = writer.finish()
        #expect(statistics.error != nil)
        #expect(statistics.written + statistics.dropped == 500)
        #expect(statistics.written < 500)
        #expect(messages.withLockedValue { $0.count } == 1)
        #expect(messages.withLockedValue { $0.first?.contains("recording stopped") } == true)
        #expect(try store.count() == statistics.written)
    }

    @Test func dropsInsteadOfBlockingWhenTheQueueIsFull() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("s.sqlite"))
        let writer = StoreWriter(store: store, session: nil, redaction: RedactionPolicy(), capacity: 1, batchSize: 1)
        var accepted = 0
        // Distinct times: the store keeps one copy of a bit-identical exchange.
        for index in 0..<2_000
        where writer.submit(sampleExchange(at: Date(timeIntervalSince1970: 1_790_000_000 + Double(index)))) {
            accepted += 1
        }
        let statistics = writer.finish()
        #expect(statistics.written == accepted)
        #expect(statistics.dropped == 2_000 - accepted)
        #expect(try store.count() == accepted)
    }

    @Test func asksProducersToWaitAboveTheSoftBoundAndCallsThemBackOnceDrained() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteStore(path: directory.file("s.sqlite"))
        let body = String(repeating: "x", count: 64 << 10)
        // A 256 KiB soft bound: four of these exchanges reach it.
        let writer = StoreWriter(
            store: store, session: nil, redaction: RedactionPolicy(), byteCapacity: 64 << 20,
            softByteCapacity: 256 << 10, batchSize: 4)
        let resumed = DispatchSemaphore(value: 0)
        var waited = 0
        for index in 0..<400 {
            #expect(writer.submit(sampleExchange(path: "/bodies/\(index)", body: body)))
            if !writer.waitForRoom({ { resumed.signal() } }) {
                waited += 1
                // A producer that waits submits nothing until it is called back.
                #expect(resumed.wait(timeout: .now() + 10) == .success)
            }
        }
        #expect(waited > 0)
        let statistics = writer.finish()
        #expect(statistics.written == 400)
        #expect(statistics.dropped == 0)
        #expect(try store.count() == 400)
        // Closed: nobody is asked to wait for a writer that will not write again.
        let room = writer.waitForRoom { {} }
        #expect(room)
    }
}
