import DriftcheckCore
import DriftcheckPostgres
import DriftcheckTestSupport
import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import DriftcheckStore

@Suite struct OutboxTests {
    static func exchange(_ index: Int) -> Exchange {
        sampleExchange(path: "/orders/\(index)", at: Date(timeIntervalSince1970: 1_790_000_000 + Double(index) / 100))
    }

    /// Two recorders started in one directory share the default outbox: both send, and
    /// neither deletes what the other has not sent, while the writer keeps adding.
    @Test(arguments: StoreKind.allCases)
    func twoOutboxesOnOneFileSendEverythingOnce(remoteKind: StoreKind) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let remote = try await FreshStore.make(remoteKind)
        defer { remote.directory.remove() }
        let path = directory.file("outbox.sqlite")
        let local = try SQLiteStore(path: path)
        let session = try local.beginSession(mode: "reverse", command: nil, toolVersion: "test")
        let outboxes = try (0..<2).map { _ in
            Outbox(local: try SQLiteStore(path: path), interval: 0.01) { try remote.open() }
        }
        let writer = StoreWriter(store: local, session: session, redaction: RedactionPolicy(), batchSize: 50)
        for index in 0..<3000 {
            writer.submit(Self.exchange(index))
            if index % 100 == 0 { try await Task.sleep(nanoseconds: 5_000_000) }
        }
        #expect(try await offPool { writer.finish() }.written == 3000)
        try local.endSession(session)
        let reports = try await offPool { outboxes.map { $0.finish(deadline: Date().addingTimeInterval(30)) } }
        #expect(reports.allSatisfy { $0.waiting == 0 && $0.error == nil })
        #expect(reports.map(\.shipped).reduce(0, +) >= 3000)
        #expect(try local.count() == 0)
        let store = try remote.open()
        #expect(try store.count() == 3000)
        let paths = try store.exchanges().map(\.request.path)
        #expect(Set(paths).count == 3000)
        let uid = try #require(try store.transferPage(after: 0, limit: 1, filter: TransferFilter()).first?.session)
        #expect(try store.sessions(uids: [uid]).first?.endedAt != nil)
    }

    /// SQLite reuses the ids of an emptied table: a page sent by one outbox, deleted by another,
    /// must not take a new row with the same id along when the first deletes it too.
    @Test func deletingASentPageSparesARowThatReusedItsID() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let local = try SQLiteStore(path: directory.file("outbox.sqlite"))
        try local.insert((0..<10).map(Self.exchange), session: nil)
        let page = try local.transferPage(after: 0, limit: 100, filter: TransferFilter())
        try local.deleteExchanges(page)
        try local.insert([Self.exchange(99)], session: nil)
        #expect(try local.exchanges().map(\.id) == [1])
        try local.deleteExchanges(page)
        #expect(try local.exchanges().map(\.request.path) == ["/orders/99"])
    }

    /// A store that cannot be reached leaves everything in the outbox, with the reason; once it
    /// answers, the next pass sends it all.
    @Test func anUnreachableStoreKeepsEverythingUntilItAnswers() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let remote = try await FreshStore.make(.sqlite)
        defer { remote.directory.remove() }
        let local = try SQLiteStore(path: directory.file("outbox.sqlite"))
        let reachable = NIOLockedValueBox(false)
        let attempts = NIOLockedValueBox(0)
        let outbox = Outbox(local: local, interval: 0.01, maximumBackoff: 0.05) {
            attempts.withLockedValue { $0 += 1 }
            guard reachable.withLockedValue({ $0 }) else {
                throw StoreError.unreachable(path: "postgres://team/db", detail: "Connection refused")
            }
            return try remote.open()
        }
        try local.insert((0..<500).map(Self.exchange), session: nil)
        #expect(await eventually(timeout: 30) { attempts.withLockedValue { $0 } >= 3 })
        #expect(outbox.currentReport.error?.contains("Connection refused") == true)
        #expect(try local.count() == 500)
        reachable.withLockedValue { $0 = true }
        #expect(await eventually(timeout: 30) { (try? local.count()) == 0 })
        let report = try await offPool { outbox.finish(deadline: Date().addingTimeInterval(10)) }
        #expect(report == Outbox.Report(shipped: 500, waiting: 0, error: nil))
        #expect(try remote.open().count() == 500)
    }

    @Test func finishGivesUpAtItsDeadlineAndSaysWhatWaits() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let local = try SQLiteStore(path: directory.file("outbox.sqlite"))
        try local.insert((0..<20).map(Self.exchange), session: nil)
        let outbox = Outbox(local: local, interval: 0.01, maximumBackoff: 0.05) {
            throw StoreError.unreachable(path: "postgres://team/db", detail: "timeout expired")
        }
        let began = Date()
        let report = try await offPool { outbox.finish(deadline: Date().addingTimeInterval(1)) }
        // A bound that catches waiting on the remote without end, not the machine's speed: with
        // two test runs at once on 2 cores this took 20.6 s.
        #expect(Date().timeIntervalSince(began) < 120)
        #expect(report.waiting == 20 && report.shipped == 0)
        #expect(report.error?.contains("timeout expired") == true)
    }
}
