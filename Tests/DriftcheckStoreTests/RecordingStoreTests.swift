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
    /// Content hashes are stored and compared across stores and versions (a copy adds nothing
    /// twice): the same exchange must hash to the same bytes forever. Pinned for a response with
    /// every part (escaped header text, bodies, trailers, a truncated size) and for a failure.
    @Test func contentHashesStayTheSameAcrossVersions() {
        var full = sampleExchange()
        full.request.headers = HeaderFields([("Accept", "application/json"), ("X-Quote", #"a "q" \ é"#)])
        full.request.body = CapturedBody(bytes: Data("{\"a\":1}".utf8), size: 100)
        full.result = .response(
            RecordedResponse(
                status: 200, headers: HeaderFields([("Content-Type", "application/grpc")]),
                body: CapturedBody(bytes: Data([0, 0, 0, 0, 1, 0x0a])), trailers: HeaderFields([("grpc-status", "0")])))
        var failed = sampleExchange()
        failed.request.query = nil
        failed.result = .failure(ExchangeFailure(.timeout, "upstream sent nothing for 30000 ms"))
        let hex = [sampleExchange(), full, failed].map {
            ContentHash.of($0).map { String(format: "%02x", $0) }.joined()
        }
        #expect(
            hex == [
                "46ecf038d75c9736586942c6039a8ba89296a9ddc4e72a20cee1ac2204b2af53",
                "b472138c0ed8d170e1608f7951649dd9f7f19eeee89500663bd86194aba7e566",
                "cd7b4629e862c233abba1ad3048d16679e67271bf233675412b0c220f864ca33",
            ])
    }

    @Test func headerValuesOfAnyTextRoundTrip() throws {
        let fields = HeaderFields([
            ("X-Quote", #"a "quoted" \ value"#), ("X-Control", "tab\there\u{01}\u{1F}end"), ("X-Unicode", "café ✓ 😀"),
            ("X-Empty", ""),
        ])
        let text = HeaderColumn.encode(fields)
        #expect(try JSONValue.parse(text) != nil)
        #expect(HeaderColumn.decode(text) == fields)
        #expect(text.contains(#"\u0001"#) && text.contains(#"\u001f"#) && text.contains(#"\t"#))
    }

    @Test func createsAVersionedWALStoreAndRoundTripsExchanges() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("nested/recordings.sqlite")
        let store = try SQLiteStore(path: path)
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

        let reopened = try SQLiteStore(path: path)
        #expect(try reopened.count() == 3)
        let pragmas = try reopened.pool.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA user_version"), try Int32.fetchOne(db, sql: "PRAGMA application_id"),
                try String.fetchOne(db, sql: "PRAGMA journal_mode")
            )
        }
        #expect(pragmas.0 == SQLiteStore.formatVersion)
        #expect(pragmas.1 == SQLiteStore.applicationID)
        #expect(pragmas.2 == "wal")
    }

    @Test func refusesAFileThatIsNotSQLite() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("notes.sqlite", String(repeating: "not a database at all\n", count: 100))
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect {
            try SQLiteStore(path: path)
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
            try SQLiteStore(path: path)
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
        try SQLiteStore(path: path).close()
        try runSQLite(path, "PRAGMA user_version = 99;")
        #expect {
            try SQLiteStore(path: path)
        } throws: { error in
            if case StoreError.newerFormat(_, 99, _) = error { return true }
            return false
        }
    }

    @Test func aVersionTwoStoreMigratesKeepsItsExchangesAndGainsIdentities() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("s.sqlite")
        // A store as builds before content hashes left it, with one exchange stored twice.
        let row = """
            INSERT INTO exchange (session_id, service, method, scheme, host, port, path, query, request_headers,
                request_body, request_body_size, status, response_headers, response_body, response_body_size,
                failure, started_at, duration)
            VALUES (1, 'orders', 'GET', 'http', 'orders.shop', 8080, '/orders/1', 'expand=items',
                '[["Accept","application/json"]]', X'', 0, 200, '[["Content-Type","application/json"]]',
                CAST('{"id":1}' AS BLOB), 8, NULL, 1790000000, 0.0125);
            """
        try runSQLite(
            path,
            """
            PRAGMA application_id = \(SQLiteStore.applicationID);
            CREATE TABLE session (id INTEGER PRIMARY KEY, started_at REAL NOT NULL, ended_at REAL, mode TEXT NOT NULL,
                command TEXT, tool_version TEXT NOT NULL);
            CREATE TABLE exchange (id INTEGER PRIMARY KEY, session_id INTEGER REFERENCES session(id),
                service TEXT NOT NULL, method TEXT NOT NULL, scheme TEXT NOT NULL, host TEXT NOT NULL,
                port INTEGER NOT NULL, path TEXT NOT NULL, query TEXT, request_headers TEXT NOT NULL,
                request_body BLOB NOT NULL, request_body_size INTEGER NOT NULL, status INTEGER, response_headers TEXT,
                response_body BLOB, response_body_size INTEGER, failure TEXT, started_at REAL NOT NULL,
                duration REAL NOT NULL);
            CREATE INDEX exchange_by_service ON exchange(service, id);
            CREATE INDEX exchange_by_path ON exchange(service, path, id);
            INSERT INTO session VALUES (1, 1790000000, 1790000100, 'reverse', NULL, '0.0.9');
            \(row) \(row)
            UPDATE exchange SET path = '/orders/2' WHERE id = 2;
            \(row)
            PRAGMA user_version = 2;
            """)
        let store = try SQLiteStore(path: path)
        #expect(try runSQLite(path, "PRAGMA user_version;") == "\(SQLiteStore.formatVersion)")
        // The third row duplicated the first to the last bit: one exchange, kept once.
        #expect(try store.exchanges().map(\.request.path) == ["/orders/1", "/orders/2"])
        var first = try store.exchanges()[0]
        first.id = nil
        #expect(first == sampleExchange())
        let page = try store.transferPage(after: 0, limit: 10, filter: TransferFilter())
        #expect(page.map(\.contentHash) == (try store.exchanges()).map(ContentHash.of))
        let uid = try #require(page.first?.session)
        #expect(try store.sessions(uids: [uid]).first?.toolVersion == "0.0.9")
        #expect(try store.insert([sampleExchange()], session: nil) == 0)
    }

    @Test func reportsACorruptStoreByName() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("s.sqlite")
        let store = try SQLiteStore(path: path)
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
            let reopened = try SQLiteStore(path: path)
            _ = try reopened.exchanges()
        } throws: { error in
            guard let storeError = error as? StoreError else { return false }
            return "\(storeError)".hasPrefix(path)
        }
    }
}
