import DriftcheckCore
import DriftcheckTestSupport
import Foundation
import Testing

@testable import DriftcheckStore

func sampleExchange(
    service: String = "orders", path: String = "/orders/1", status: Int = 200, body: String = #"{"id":1}"#,
    at time: Date = Date(timeIntervalSince1970: 1_790_000_000)
) -> Exchange {
    Exchange(
        service: service,
        request: RecordedRequest(
            method: "GET", host: "orders.shop", port: 8080, path: path, query: "expand=items",
            headers: HeaderFields([("Accept", "application/json")])),
        result: .response(
            RecordedResponse(
                status: status, headers: HeaderFields([("Content-Type", "application/json")]),
                body: CapturedBody(bytes: Data(body.utf8)))),
        startedAt: time, duration: 0.0125)
}

@Suite struct RecordingStoreTests {
    @Test func headerValuesOfAnyTextRoundTrip() throws {
        let fields = HeaderFields([
            ("X-Quote", #"a "quoted" \ value"#), ("X-Control", "tab\there\u{01}\u{1F}end"), ("X-Unicode", "café ✓ 😀"),
            ("X-Empty", ""),
        ])
        let text = RecordingStore.encode(fields)
        #expect(try JSONValue.parse(text) != nil)
        #expect(RecordingStore.decodeHeaders(text) == fields)
        #expect(text.contains(#"\u0001"#) && text.contains(#"\u001f"#) && text.contains(#"\t"#))
    }

    @Test func createsAVersionedWALStoreAndRoundTripsExchanges() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("nested/recordings.sqlite")
        let store = try RecordingStore(path: path)
        let session = try store.beginSession(mode: "reverse", command: nil, toolVersion: "test")
        var truncated = sampleExchange(path: "/big")
        truncated.request.body = CapturedBody(bytes: Data("abc".utf8), size: 5_000_000)
        let failed = Exchange(
            service: "orders", request: sampleExchange().request,
            result: .failure(ExchangeFailure(.connect, "connection refused")),
            startedAt: Date(timeIntervalSince1970: 1_790_000_001), duration: 0.001)
        try store.insert([sampleExchange(), truncated, failed], session: session)

        let read = try store.exchanges()
        #expect(read.count == 3)
        #expect(read.map(\.id) == [1, 2, 3])
        var first = read[0]
        first.id = nil
        #expect(first == sampleExchange())
        #expect(read[1].request.body.isTruncated)
        #expect(read[1].request.body.size == 5_000_000)
        #expect(read[2].result == .failure(ExchangeFailure(.connect, "connection refused")))
        // Failures are stored by kind; text from stores older than kinds reads as `other`.
        #expect(
            ExchangeFailure(stored: "timeout: upstream sent nothing for 300 ms")
                == ExchangeFailure(.timeout, "upstream sent nothing for 300 ms"))
        #expect(ExchangeFailure(stored: "connection refused") == ExchangeFailure(.other, "connection refused"))
        #expect(try store.exchanges(includeFailures: false).count == 2)
        #expect(try store.exchanges(service: "nobody").isEmpty)
        try store.close()

        let reopened = try RecordingStore(path: path)
        #expect(try reopened.count() == 3)
        let pragmas = try reopened.pool.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA user_version"), try Int32.fetchOne(db, sql: "PRAGMA application_id"),
                try String.fetchOne(db, sql: "PRAGMA journal_mode")
            )
        }
        #expect(pragmas.0 == RecordingStore.formatVersion)
        #expect(pragmas.1 == RecordingStore.applicationID)
        #expect(pragmas.2 == "wal")
    }

    @Test func summarisesTemplatedEndpoints() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try RecordingStore(path: directory.file("s.sqlite"))
        try store.insert(
            [
                sampleExchange(path: "/orders/1", at: Date(timeIntervalSince1970: 100)),
                sampleExchange(path: "/orders/2", at: Date(timeIntervalSince1970: 300)),
                sampleExchange(path: "/orders", at: Date(timeIntervalSince1970: 200)),
                sampleExchange(service: "payments", path: "/charges/ch_12345", at: Date(timeIntervalSince1970: 50)),
            ], session: nil)
        let summaries = try store.summaries()
        #expect(summaries.map(\.endpoint) == ["GET /orders", "GET /orders/{id}", "GET /charges/{id}"])
        #expect(summaries[1].exchanges == 2)
        #expect(summaries[1].firstSeen == Date(timeIntervalSince1970: 100))
        #expect(summaries[1].lastSeen == Date(timeIntervalSince1970: 300))
        #expect(summaries[2].service == "payments")
    }

    @Test func refusesAFileThatIsNotSQLite() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("notes.sqlite", String(repeating: "not a database at all\n", count: 100))
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect {
            try RecordingStore(path: path)
        } throws: { error in
            guard case StoreError.notAStore(let named, _) = error else { return false }
            return named == path && "\(error)".hasPrefix(path)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test func refusesAnotherApplicationsDatabaseWithoutTouchingIt() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("other.sqlite")
        try runSQLite(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        #expect {
            try RecordingStore(path: path)
        } throws: { error in
            if case StoreError.notAStore = error { return true }
            return false
        }
        #expect(try runSQLite(path, "PRAGMA journal_mode;") == "delete")
    }

    @Test func refusesAStoreFromANewerDriftcheck() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("s.sqlite")
        try RecordingStore(path: path).close()
        try runSQLite(path, "PRAGMA user_version = 99;")
        #expect {
            try RecordingStore(path: path)
        } throws: { error in
            if case StoreError.newerFormat(_, 99) = error { return true }
            return false
        }
    }

    @Test func aVersionOneStoreMigratesAndKeepsItsExchanges() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("s.sqlite")
        let store = try RecordingStore(path: path)
        try store.insert([sampleExchange()], session: nil)
        try store.close()
        // What a build before the path index left behind.
        try runSQLite(path, "DROP INDEX exchange_by_path; PRAGMA user_version = 1;")
        let reopened = try RecordingStore(path: path)
        #expect(try reopened.count() == 1)
        #expect(try runSQLite(path, "PRAGMA user_version;") == "2")
        #expect(
            try runSQLite(path, "SELECT name FROM sqlite_master WHERE name = 'exchange_by_path';") == "exchange_by_path"
        )
    }

    @Test func reportsACorruptStoreByName() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("s.sqlite")
        let store = try RecordingStore(path: path)
        try store.insert(
            (0..<200).map { sampleExchange(path: "/orders/\($0)", body: String(repeating: "x", count: 2000)) },
            session: nil)
        try store.close()
        // Scribble over the pages after the schema page, as a torn disk write would.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 4096)
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 64 * 1024))
        try handle.close()
        #expect {
            let reopened = try RecordingStore(path: path)
            _ = try reopened.exchanges()
        } throws: { error in
            guard let storeError = error as? StoreError else { return false }
            return "\(storeError)".hasPrefix(path)
        }
    }
}
