import DriftcheckCore
import Foundation
import GRDB
import GRDBSQLite

/// The SQLite file recordings live in: WAL, schema versioned by `PRAGMA user_version`.
public final class SQLiteStore: RecordingStore {
    /// The newest store format this build reads and writes (see docs/store-format.md).
    public static let formatVersion = 6
    /// `PRAGMA application_id` of every driftcheck store: "DRFT".
    public static let applicationID: Int32 = 0x4452_4654

    public let path: String
    let pool: DatabasePool

    public var location: String { path }

    /// Opens the store at `path`, creating it (and its directory) when missing.
    public init(path: String) throws {
        self.path = path
        let manager = FileManager.default
        let exists = manager.fileExists(atPath: path)
        if exists {
            try Self.validate(path: path)
        } else {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                do {
                    try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
                } catch {
                    throw StoreError.unusable(path: path, detail: "cannot create directory \(directory)")
                }
            }
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // NORMAL in WAL mode loses at most the last transactions on power loss, never on a crash.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Bodies dominate the bytes written: larger pages mean fewer writes per body (new files
            // only; SQLite ignores this once a file has a page size).
            try db.execute(sql: "PRAGMA page_size = 16384")
            // The default checkpoints every 4 MiB, which at recording speed copies the WAL back
            // many times a second; 64 MiB between checkpoints amortises that.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 4096")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try pool.write { db in try Self.migrate(db) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.translate(error, path: path)
        }
    }

    static func translate(_ error: Error, path: String) -> StoreError {
        guard let error = error as? DatabaseError else {
            return .unusable(path: path, detail: "\(error)")
        }
        switch error.resultCode {
        case .SQLITE_NOTADB: return .notAStore(path: path, detail: "not an SQLite database")
        case .SQLITE_CORRUPT: return .corrupt(path: path, detail: error.message ?? "database disk image is malformed")
        default: return .unusable(path: path, detail: error.message ?? "\(error.resultCode)")
        }
    }

    /// Refuses files that are not ours before anything writes to them.
    static func validate(path: String) throws {
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            try queue.read { db in
                let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
                if applicationID == 0 && tables == 0 { return }
                guard applicationID == SQLiteStore.applicationID else {
                    throw StoreError.notAStore(path: path, detail: "an SQLite database of another application")
                }
                if version > formatVersion {
                    throw StoreError.newerFormat(path: path, version: version, known: formatVersion)
                }
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM session")
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw translate(error, path: path)
        }
    }

    /// One step per format version; each runs once, in order, inside the write transaction.
    static let migrations: [@Sendable (Database) throws -> Void] = [
        { db in
            try db.execute(
                sql: """
                    CREATE TABLE session (
                        id INTEGER PRIMARY KEY,
                        started_at REAL NOT NULL,
                        ended_at REAL,
                        mode TEXT NOT NULL,
                        command TEXT,
                        tool_version TEXT NOT NULL
                    );
                    CREATE TABLE exchange (
                        id INTEGER PRIMARY KEY,
                        session_id INTEGER REFERENCES session(id),
                        service TEXT NOT NULL,
                        method TEXT NOT NULL,
                        scheme TEXT NOT NULL,
                        host TEXT NOT NULL,
                        port INTEGER NOT NULL,
                        path TEXT NOT NULL,
                        query TEXT,
                        request_headers TEXT NOT NULL,
                        request_body BLOB NOT NULL,
                        request_body_size INTEGER NOT NULL,
                        status INTEGER,
                        response_headers TEXT,
                        response_body BLOB,
                        response_body_size INTEGER,
                        failure TEXT,
                        started_at REAL NOT NULL,
                        duration REAL NOT NULL
                    );
                    CREATE INDEX exchange_by_service ON exchange(service, id);
                    """)
        },
        // Version 2: endpoint templates are learned per distinct path and sample one answer per
        // path; without this index each sample scanned the service's rows.
        { db in
            try db.execute(sql: "CREATE INDEX exchange_by_path ON exchange(service, path, id)")
        },
        // Version 3: identities that survive `push` and `pull` — a uid per session and a content
        // hash per exchange (unique: the same exchange is stored once) — and an index on time.
        { db in
            try db.execute(sql: "ALTER TABLE session ADD COLUMN uid TEXT")
            try db.execute(sql: "ALTER TABLE exchange ADD COLUMN content_hash BLOB")
            for id in try Int64.fetchAll(db, sql: "SELECT id FROM session") {
                try db.execute(
                    sql: "UPDATE session SET uid = ? WHERE id = ?", arguments: [UUID().uuidString.lowercased(), id])
            }
            var seen = Set<Data>()
            var after: Int64 = 0
            while true {
                let rows = try Row.fetchAll(
                    db, sql: "SELECT \(versionTwoColumns), NULL FROM exchange WHERE id > ? ORDER BY id LIMIT 1000",
                    arguments: [after])
                guard let last = rows.last else { break }
                for row in rows {
                    let hash = ContentHash.of(exchange(from: row))
                    let id: Int64 = row[0]
                    // Two rows identical to the last bit are one exchange stored twice.
                    if seen.insert(hash).inserted {
                        try db.execute(sql: "UPDATE exchange SET content_hash = ? WHERE id = ?", arguments: [hash, id])
                    } else {
                        try db.execute(sql: "DELETE FROM exchange WHERE id = ?", arguments: [id])
                    }
                }
                after = last[0]
            }
            try db.execute(
                sql: """
                    CREATE UNIQUE INDEX session_by_uid ON session(uid);
                    CREATE UNIQUE INDEX exchange_by_hash ON exchange(content_hash);
                    CREATE INDEX exchange_by_time ON exchange(started_at);
                    """)
        },
        // Version 4: response trailers (HTTP/2, gRPC's status).
        { db in
            try db.execute(sql: "ALTER TABLE exchange ADD COLUMN response_trailers TEXT")
        },
        // Version 5: protobuf descriptor sets, for decoding gRPC messages by name.
        { db in
            try db.execute(
                sql:
                    "CREATE TABLE descriptor_set (id INTEGER PRIMARY KEY, content_hash BLOB UNIQUE, bytes BLOB NOT NULL)"
            )
        },
        // Version 6: uniqueness by (started_at, content_hash) instead of the hash alone: the same
        // duplicates (the hash covers started_at), but the recorder's inserts land at the end of
        // the index in time order instead of on random pages.
        { db in
            try db.execute(
                sql: """
                    DROP INDEX exchange_by_hash;
                    DROP INDEX exchange_by_time;
                    CREATE UNIQUE INDEX exchange_by_time_hash ON exchange(started_at, content_hash);
                    """)
        },
    ]

    static func migrate(_ db: Database) throws {
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if version > formatVersion {
            throw StoreError.newerFormat(path: db.description, version: version, known: formatVersion)
        }
        guard version < formatVersion else { return }
        try db.execute(sql: "PRAGMA application_id = \(applicationID)")
        for step in version..<formatVersion {
            try migrations[step](db)
            try db.execute(sql: "PRAGMA user_version = \(step + 1)")
        }
    }

    // MARK: Sessions

    public func beginSession(mode: String, command: String?, toolVersion: String) throws -> Int64 {
        try guarded {
            try pool.write { db in
                try db.execute(
                    sql: "INSERT INTO session (uid, started_at, mode, command, tool_version) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        UUID().uuidString.lowercased(), Date().timeIntervalSince1970, mode, command, toolVersion,
                    ])
                return db.lastInsertedRowID
            }
        }
    }

    public func endSession(_ id: Int64) throws {
        try guarded {
            try pool.write { db in
                try db.execute(
                    sql: "UPDATE session SET ended_at = ? WHERE id = ?", arguments: [Date().timeIntervalSince1970, id])
            }
        }
    }

    // MARK: Exchanges

    @discardableResult
    public func insert(_ exchanges: [Exchange], session: Int64?) throws -> Int {
        try guarded {
            try pool.write { db in
                try Self.insert(db, exchanges.lazy.map { ($0, nil, session) })
            }
        }
    }

    /// Inserts rows, each with its hash (computed when nil) and session id; returns how many
    /// were new.
    static func insert<Rows: Sequence>(_ db: Database, _ rows: Rows) throws -> Int
    where Rows.Element == (Exchange, Data?, Int64?) {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO exchange (session_id, service, method, scheme, host, port, path, query,
                    request_headers, request_body, request_body_size, status, response_headers,
                    response_body, response_body_size, failure, started_at, duration, content_hash,
                    response_trailers)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (started_at, content_hash) DO NOTHING
                """)
        // Bound with SQLite's own calls: building GRDB's argument arrays of existentials
        // cost a fifth of the writer's instructions (callgrind, driftcheck-bench-store).
        let raw = statement.sqliteStatement
        // Static blob bindings must not outlive this call.
        defer { sqlite3_clear_bindings(raw) }
        var added = 0
        for (exchange, knownHash, session) in rows {
            let request = exchange.request
            let response = exchange.response
            let requestHeaders = HeaderColumn.encode(request.headers)
            let responseHeaders = response.map { HeaderColumn.encode($0.headers) }
            let hash =
                knownHash
                ?? ContentHash.of(exchange, requestHeaders: requestHeaders, responseHeaders: responseHeaders)
            if let session { sqlite3_bind_int64(raw, 1, session) } else { sqlite3_bind_null(raw, 1) }
            bind(raw, 2, exchange.service)
            bind(raw, 3, request.method)
            bind(raw, 4, request.scheme)
            bind(raw, 5, request.host)
            sqlite3_bind_int64(raw, 6, Int64(request.port))
            bind(raw, 7, request.path)
            bind(raw, 8, request.query)
            bind(raw, 9, requestHeaders)
            sqlite3_bind_int64(raw, 11, Int64(request.body.size))
            if let response {
                sqlite3_bind_int64(raw, 12, Int64(response.status))
                bind(raw, 13, responseHeaders)
                sqlite3_bind_int64(raw, 15, Int64(response.body.size))
                sqlite3_bind_null(raw, 16)
                bind(raw, 20, response.trailers.fields.isEmpty ? nil : HeaderColumn.encode(response.trailers))
            } else {
                for index in [12, 13, 14, 15, 20] as [Int32] { sqlite3_bind_null(raw, index) }
                if case .failure(let failure) = exchange.result { bind(raw, 16, failure.stored) }
            }
            sqlite3_bind_double(raw, 17, exchange.startedAt.timeIntervalSince1970)
            sqlite3_bind_double(raw, 18, exchange.duration)
            // Bodies are bound in place (no copy) for the duration of the step.
            let code = hash.withUnsafeBytes { hashBytes in
                request.body.bytes.withUnsafeBytes { requestBody in
                    (response?.body.bytes ?? Data()).withUnsafeBytes { responseBody in
                        bindBlob(raw, 10, requestBody)
                        if response != nil { bindBlob(raw, 14, responseBody) }
                        bindBlob(raw, 19, hashBytes)
                        defer { sqlite3_reset(raw) }
                        return sqlite3_step(raw)
                    }
                }
            }
            guard code == SQLITE_DONE else {
                throw DatabaseError(
                    resultCode: ResultCode(rawValue: code),
                    message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
            }
            added += Int(sqlite3_changes(db.sqliteConnection))
        }
        return added
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    static func bind(_ statement: OpaquePointer, _ index: Int32, _ text: String?) {
        guard var text else {
            sqlite3_bind_null(statement, index)
            return
        }
        text.withUTF8 { bytes in
            if let base = bytes.baseAddress, bytes.count > 0 {
                _ = base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    sqlite3_bind_text(statement, index, $0, Int32(bytes.count), transient)
                }
            } else {
                sqlite3_bind_text(statement, index, "", 0, transient)
            }
        }
    }

    /// Binds without copying: `bytes` must stay valid until the statement is reset.
    static func bindBlob(_ statement: OpaquePointer, _ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, bytes.count > 0 {
            sqlite3_bind_blob(statement, index, base, Int32(bytes.count), nil)
        } else {
            sqlite3_bind_zeroblob(statement, index, 0)
        }
    }

    public func exchanges(service: String?, includeFailures: Bool) throws -> [Exchange] {
        try guarded {
            try pool.read { db in
                var sql = "SELECT \(Self.exchangeColumns) FROM exchange"
                var conditions: [String] = []
                var arguments: StatementArguments = []
                if let service {
                    conditions.append("service = ?")
                    arguments += [service]
                }
                if !includeFailures { conditions.append("failure IS NULL") }
                if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
                sql += " ORDER BY id"
                return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.exchange(from:))
            }
        }
    }

    public func exchanges(service: String, after afterID: Int64, limit: Int) throws -> [Exchange] {
        try guarded {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql:
                        "SELECT \(Self.exchangeColumns) FROM exchange WHERE service = ? AND failure IS NULL AND id > ? ORDER BY id LIMIT ?",
                    arguments: [service, afterID, limit]
                ).map(Self.exchange(from:))
            }
        }
    }

    public func services() throws -> [(name: String, exchanges: Int)] {
        try guarded {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql:
                        "SELECT service, count(*) AS n FROM exchange WHERE failure IS NULL GROUP BY service ORDER BY service"
                ).map { ($0["service"], $0["n"]) }
            }
        }
    }

    public func count() throws -> Int {
        try guarded { try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM exchange") ?? 0 } }
    }

    public func distinctPaths(service: String) throws -> [String] {
        try guarded {
            try pool.read { db in
                try String.fetchAll(
                    db, sql: "SELECT DISTINCT path FROM exchange WHERE service = ? AND failure IS NULL",
                    arguments: [service])
            }
        }
    }

    public func shapeSample(service: String, path: String) throws -> ShapeSample? {
        try guarded {
            try pool.read { db in
                try Row.fetchOne(
                    db,
                    sql: """
                        SELECT status, response_headers, response_body FROM exchange
                        WHERE service = ? AND path = ? AND failure IS NULL
                        ORDER BY status >= 300, length(response_body) = 0, id LIMIT 1
                        """, arguments: [service, path]
                ).map { row in
                    ShapeSample(
                        status: row[0] ?? 0, headers: HeaderColumn.decode(row[1]), body: row[2] ?? Data())
                }
            }
        }
    }

    public func pathCounts() throws -> [PathCount] {
        try guarded {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT service, method, path, count(*), sum(failure IS NOT NULL), min(started_at), max(started_at)
                        FROM exchange GROUP BY service, method, path
                        """
                ).map { row in
                    PathCount(
                        service: row[0], method: row[1], path: row[2], exchanges: row[3], failures: row[4],
                        first: Date(timeIntervalSince1970: row[5]), last: Date(timeIntervalSince1970: row[6]))
                }
            }
        }
    }

    // MARK: Transfer between stores

    private static func conditions(_ filter: TransferFilter) -> (String, StatementArguments) {
        var sql = ""
        var arguments: StatementArguments = []
        if !filter.services.isEmpty {
            sql += " AND e.service IN (\(filter.services.map { _ in "?" }.joined(separator: ", ")))"
            for service in filter.services { arguments += [service] }
        }
        if let since = filter.since {
            sql += " AND e.started_at >= ?"
            arguments += [since.timeIntervalSince1970]
        }
        return (sql, arguments)
    }

    public func transferPage(after afterID: Int64, limit: Int, filter: TransferFilter) throws -> [StoredExchange] {
        let (conditions, arguments) = Self.conditions(filter)
        return try guarded {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT \(Self.prefixedExchangeColumns), e.content_hash, s.uid
                        FROM exchange e LEFT JOIN session s ON s.id = e.session_id
                        WHERE e.id > ?\(conditions) ORDER BY e.id LIMIT ?
                        """, arguments: [afterID] + arguments + [limit]
                ).map { row in
                    let exchange = Self.exchange(from: row)
                    // Rows written by other tools (benchmarks, SQL by hand) may lack a hash.
                    let hash: Data? = row[19]
                    return StoredExchange(
                        exchange: exchange, contentHash: hash ?? ContentHash.of(exchange), session: row[20])
                }
            }
        }
    }

    public func transferCount(filter: TransferFilter) throws -> Int {
        let (conditions, arguments) = Self.conditions(filter)
        return try guarded {
            try pool.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM exchange e WHERE 1\(conditions)", arguments: arguments)
                    ?? 0
            }
        }
    }

    public func sessions(uids: [String]) throws -> [StoredSession] {
        guard !uids.isEmpty else { return [] }
        return try guarded {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT uid, started_at, ended_at, mode, command, tool_version FROM session
                        WHERE uid IN (\(uids.map { _ in "?" }.joined(separator: ", ")))
                        """, arguments: StatementArguments(uids)
                ).map { row in
                    StoredSession(
                        uid: row[0], startedAt: Date(timeIntervalSince1970: row[1]),
                        endedAt: (row[2] as Double?).map(Date.init(timeIntervalSince1970:)), mode: row[3],
                        command: row[4],
                        toolVersion: row[5])
                }
            }
        }
    }

    @discardableResult
    public func receive(_ rows: [StoredExchange], sessions: [StoredSession]) throws -> Int {
        try guarded {
            try pool.write { db in
                var ids: [String: Int64] = [:]
                for session in sessions {
                    try db.execute(
                        sql: """
                            INSERT INTO session (uid, started_at, ended_at, mode, command, tool_version)
                            VALUES (?, ?, ?, ?, ?, ?)
                            ON CONFLICT (uid) DO UPDATE SET ended_at = coalesce(excluded.ended_at, session.ended_at)
                            """,
                        arguments: [
                            session.uid, session.startedAt.timeIntervalSince1970,
                            session.endedAt?.timeIntervalSince1970,
                            session.mode, session.command, session.toolVersion,
                        ])
                    ids[session.uid] = try Int64.fetchOne(
                        db, sql: "SELECT id FROM session WHERE uid = ?", arguments: [session.uid])
                }
                return try Self.insert(
                    db, rows.lazy.map { ($0.exchange, $0.contentHash, $0.session.flatMap { ids[$0] }) })
            }
        }
    }

    /// Forgets exchanges that reached another store: an outbox does this once they are there.
    /// Each is named by row id and content hash, so a row that took a deleted one's id is kept.
    public func deleteExchanges(_ rows: [StoredExchange]) throws {
        try guarded {
            try pool.write { db in
                let statement = try db.cachedStatement(
                    sql: "DELETE FROM exchange WHERE id = ? AND (content_hash = ? OR content_hash IS NULL)")
                for row in rows {
                    guard let id = row.exchange.id else { continue }
                    try statement.execute(arguments: [id, row.contentHash])
                }
            }
        }
    }

    /// Checkpoints the WAL into the main file and closes every connection.
    public func close() throws {
        try guarded {
            try pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            try pool.close()
        }
    }

    private func guarded<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.translate(error, path: path)
        }
    }

    // MARK: Row coding

    /// The columns `exchange(from:)` reads, by position: looking columns up by name showed
    /// in profiles of the comparer, which reads every row.
    static let exchangeColumns = versionTwoColumns + ", response_trailers"

    /// The columns before trailers were stored, for the migrations that read rows of that age.
    static let versionTwoColumns = """
        id, service, method, scheme, host, port, path, query, request_headers, request_body, request_body_size, \
        status, response_headers, response_body, response_body_size, failure, started_at, duration
        """

    /// The same columns of `exchange e`, for joins.
    static let prefixedExchangeColumns = exchangeColumns.split(separator: ",").map {
        "e." + $0.trimmingCharacters(in: .whitespacesAndNewlines)
    }.joined(separator: ", ")

    public func descriptorSets() throws -> [Data] {
        try guarded {
            try pool.read { db in try Data.fetchAll(db, sql: "SELECT bytes FROM descriptor_set ORDER BY id") }
        }
    }

    public func addDescriptorSet(_ bytes: Data) throws {
        try guarded {
            try pool.write { db in
                try db.execute(
                    sql: "INSERT INTO descriptor_set (content_hash, bytes) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    arguments: [ContentHash.of(bytes), bytes])
            }
        }
    }

    /// Every session, for an outbox's last word on its sessions' end times.
    public func allSessions() throws -> [StoredSession] {
        let uids = try guarded { try pool.read { db in try String.fetchAll(db, sql: "SELECT uid FROM session") } }
        return try sessions(uids: uids)
    }

    static func exchange(from row: Row) -> Exchange {
        let request = RecordedRequest(
            method: row[2], scheme: row[3], host: row[4], port: row[5], path: row[6], query: row[7],
            headers: HeaderColumn.decode(row[8]), body: CapturedBody(bytes: row[9] ?? Data(), size: row[10]))
        let result: ExchangeResult
        if let failure: String = row[15] {
            result = .failure(ExchangeFailure(stored: failure))
        } else {
            result = .response(
                RecordedResponse(
                    status: row[11] ?? 0, headers: HeaderColumn.decode(row[12]),
                    body: CapturedBody(bytes: row[13] ?? Data(), size: row[14] ?? 0),
                    trailers: HeaderColumn.decode(row[18])))
        }
        return Exchange(
            id: row[0], service: row[1], request: request, result: result,
            startedAt: Date(timeIntervalSince1970: row[16]), duration: row[17])
    }
}
