import DriftcheckCore
import Foundation
import GRDB
import GRDBSQLite

/// Why a store could not be used. Every case names the file.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case notAStore(path: String, detail: String)
    case corrupt(path: String, detail: String)
    case newerFormat(path: String, version: Int)
    case unusable(path: String, detail: String)

    public var description: String {
        switch self {
        case .notAStore(let path, let detail): return "\(path): not a driftcheck store (\(detail))"
        case .corrupt(let path, let detail): return "\(path): the store is corrupt (\(detail))"
        case .newerFormat(let path, let version):
            return
                "\(path): store format \(version) was written by a newer driftcheck (this one reads up to \(RecordingStore.formatVersion))"
        case .unusable(let path, let detail): return "\(path): cannot open the store (\(detail))"
        }
    }
}

/// One row of `driftcheck list`.
public struct EndpointSummary: Sendable, Equatable, Codable {
    public var service: String
    public var endpoint: String
    public var exchanges: Int
    public var failures: Int
    public var firstSeen: Date
    public var lastSeen: Date
}

/// The SQLite file recordings live in: WAL, schema versioned by `PRAGMA user_version`.
public final class RecordingStore: Sendable {
    /// The newest store format this build reads and writes (see docs/store-format.md).
    public static let formatVersion = 2
    /// `PRAGMA application_id` of every driftcheck store: "DRFT".
    public static let applicationID: Int32 = 0x4452_4654

    public let path: String
    let pool: DatabasePool

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
                guard applicationID == RecordingStore.applicationID else {
                    throw StoreError.notAStore(path: path, detail: "an SQLite database of another application")
                }
                if version > formatVersion { throw StoreError.newerFormat(path: path, version: version) }
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
    ]

    static func migrate(_ db: Database) throws {
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if version > formatVersion { throw StoreError.newerFormat(path: db.description, version: version) }
        guard version < formatVersion else { return }
        try db.execute(sql: "PRAGMA application_id = \(applicationID)")
        for step in version..<formatVersion {
            try migrations[step](db)
            try db.execute(sql: "PRAGMA user_version = \(step + 1)")
        }
    }

    // MARK: Sessions

    /// Starts a recording session; exchanges written by this process point at it.
    public func beginSession(mode: String, command: String?, toolVersion: String) throws -> Int64 {
        try guarded {
            try pool.write { db in
                try db.execute(
                    sql: "INSERT INTO session (started_at, mode, command, tool_version) VALUES (?, ?, ?, ?)",
                    arguments: [Date().timeIntervalSince1970, mode, command, toolVersion])
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

    /// Writes `exchanges` in one transaction.
    public func insert(_ exchanges: [Exchange], session: Int64?) throws {
        try guarded {
            try pool.write { db in
                let statement = try db.cachedStatement(
                    sql: """
                        INSERT INTO exchange (session_id, service, method, scheme, host, port, path, query,
                            request_headers, request_body, request_body_size, status, response_headers,
                            response_body, response_body_size, failure, started_at, duration)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                // Bound with SQLite's own calls: building GRDB's argument arrays of existentials
                // cost a fifth of the writer's instructions (callgrind, driftcheck-bench-store).
                let raw = statement.sqliteStatement
                // Static blob bindings must not outlive this call.
                defer { sqlite3_clear_bindings(raw) }
                for exchange in exchanges {
                    let request = exchange.request
                    let response = exchange.response
                    if let session { sqlite3_bind_int64(raw, 1, session) } else { sqlite3_bind_null(raw, 1) }
                    Self.bind(raw, 2, exchange.service)
                    Self.bind(raw, 3, request.method)
                    Self.bind(raw, 4, request.scheme)
                    Self.bind(raw, 5, request.host)
                    sqlite3_bind_int64(raw, 6, Int64(request.port))
                    Self.bind(raw, 7, request.path)
                    Self.bind(raw, 8, request.query)
                    Self.bind(raw, 9, Self.encode(request.headers))
                    sqlite3_bind_int64(raw, 11, Int64(request.body.size))
                    if let response {
                        sqlite3_bind_int64(raw, 12, Int64(response.status))
                        Self.bind(raw, 13, Self.encode(response.headers))
                        sqlite3_bind_int64(raw, 15, Int64(response.body.size))
                        sqlite3_bind_null(raw, 16)
                    } else {
                        for index in [12, 13, 14, 15] as [Int32] { sqlite3_bind_null(raw, index) }
                        if case .failure(let failure) = exchange.result { Self.bind(raw, 16, failure.stored) }
                    }
                    sqlite3_bind_double(raw, 17, exchange.startedAt.timeIntervalSince1970)
                    sqlite3_bind_double(raw, 18, exchange.duration)
                    // Bodies are bound in place (no copy) for the duration of the step.
                    let code = request.body.bytes.withUnsafeBytes { requestBody in
                        (response?.body.bytes ?? Data()).withUnsafeBytes { responseBody in
                            Self.bindBlob(raw, 10, requestBody)
                            if response != nil { Self.bindBlob(raw, 14, responseBody) }
                            defer { sqlite3_reset(raw) }
                            return sqlite3_step(raw)
                        }
                    }
                    guard code == SQLITE_DONE else {
                        throw DatabaseError(
                            resultCode: ResultCode(rawValue: code),
                            message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                    }
                }
            }
        }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private static func bind(_ statement: OpaquePointer, _ index: Int32, _ text: String?) {
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
    private static func bindBlob(_ statement: OpaquePointer, _ index: Int32, _ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, bytes.count > 0 {
            sqlite3_bind_blob(statement, index, base, Int32(bytes.count), nil)
        } else {
            sqlite3_bind_zeroblob(statement, index, 0)
        }
    }

    /// Exchanges in recorded order, optionally of one service, optionally without failures.
    public func exchanges(service: String? = nil, includeFailures: Bool = true) throws -> [Exchange] {
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

    /// One page of successful exchanges of `service` after `afterID`, in recorded order: the
    /// comparer streams through a store page by page instead of loading it whole.
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

    /// Recorded services with their count of successful exchanges, by name.
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

    /// The endpoint templates of `service`, learned from every path it recorded and from the
    /// routes its mocks declare: the one answer to "which endpoint is this request" for `list`,
    /// `compare`, reports and exports alike.
    public func catalog(service: String, declared: [DeclaredRoute] = []) throws -> EndpointCatalog {
        let paths = try guarded {
            try pool.read { db in
                try String.fetchAll(
                    db, sql: "SELECT DISTINCT path FROM exchange WHERE service = ? AND failure IS NULL",
                    arguments: [service])
            }
        }
        return EndpointCatalog.learn(paths: paths, declared: declared) { path in
            // The first successful answer with a body stands for the path's shape.
            guard
                let row = try? self.pool.read({ db in
                    try Row.fetchOne(
                        db,
                        sql: """
                            SELECT status, response_headers, response_body FROM exchange
                            WHERE service = ? AND path = ? AND failure IS NULL
                            ORDER BY status >= 300, length(response_body) = 0, id LIMIT 1
                            """, arguments: [service, path])
                })
            else { return nil }
            let status: Int = row["status"] ?? 0
            if status >= 300 { return TemplateLearner.failuresOnly }
            guard let bytes = row["response_body"] as Data?, !bytes.isEmpty else { return nil }
            let headers = Self.decodeHeaders(row["response_headers"])
            let type = MediaType.of(headers)
            guard type == nil || MediaType.isJSON(type), let body = try? JSONValue.parse(bytes) else { return nil }
            return TemplateLearner.keyPaths(of: body)
        }
    }

    /// Services and templated endpoints with counts and first/last seen, sorted.
    public func summaries() throws -> [EndpointSummary] {
        let rows = try guarded {
            try pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: """
                        SELECT service, method, path, count(*) AS n, sum(failure IS NOT NULL) AS failed,
                            min(started_at) AS first, max(started_at) AS last
                        FROM exchange GROUP BY service, method, path
                        """)
            }
        }
        var merged: [String: EndpointSummary] = [:]
        var catalogs: [String: EndpointCatalog] = [:]
        for row in rows {
            let service: String = row["service"]
            if catalogs[service] == nil { catalogs[service] = try catalog(service: service) }
            let endpoint = catalogs[service]!.endpoint(method: row["method"], path: row["path"])
            let first = Date(timeIntervalSince1970: row["first"])
            let last = Date(timeIntervalSince1970: row["last"])
            let key = "\(service) \(endpoint)"
            if var summary = merged[key] {
                summary.exchanges += row["n"]
                summary.failures += row["failed"]
                summary.firstSeen = min(summary.firstSeen, first)
                summary.lastSeen = max(summary.lastSeen, last)
                merged[key] = summary
            } else {
                merged[key] = EndpointSummary(
                    service: service, endpoint: endpoint, exchanges: row["n"], failures: row["failed"],
                    firstSeen: first, lastSeen: last)
            }
        }
        return merged.values.sorted { ($0.service, $0.endpoint) < ($1.service, $1.endpoint) }
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

    /// `[["name","value"],…]`, written directly: this runs for every stored exchange.
    static func encode(_ headers: HeaderFields) -> String {
        var out: [UInt8] = [0x5B]
        out.reserveCapacity(headers.fields.reduce(2) { $0 + $1.name.utf8.count + $1.value.utf8.count + 8 })
        for (index, field) in headers.fields.enumerated() {
            if index > 0 { out.append(0x2C) }
            out.append(0x5B)
            JSONValue.writeString(field.name, to: &out)
            out.append(0x2C)
            JSONValue.writeString(field.value, to: &out)
            out.append(0x5D)
        }
        out.append(0x5D)
        return String(decoding: out, as: UTF8.self)
    }

    static func decodeHeaders(_ text: String?) -> HeaderFields {
        guard let text, case .array(let items)? = try? JSONValue.parse(text) else { return HeaderFields() }
        return HeaderFields(
            fields: items.compactMap { item in
                guard case .array(let pair) = item, pair.count == 2, case .string(let name) = pair[0],
                    case .string(let value) = pair[1]
                else { return nil }
                return .init(name, value)
            })
    }

    /// The columns `exchange(from:)` reads, by position: looking columns up by name showed
    /// in profiles of the comparer, which reads every row.
    static let exchangeColumns = """
        id, service, method, scheme, host, port, path, query, request_headers, request_body, request_body_size, \
        status, response_headers, response_body, response_body_size, failure, started_at, duration
        """

    static func exchange(from row: Row) -> Exchange {
        let request = RecordedRequest(
            method: row[2], scheme: row[3], host: row[4], port: row[5], path: row[6], query: row[7],
            headers: decodeHeaders(row[8]), body: CapturedBody(bytes: row[9] ?? Data(), size: row[10]))
        let result: ExchangeResult
        if let failure: String = row[15] {
            result = .failure(ExchangeFailure(stored: failure))
        } else {
            result = .response(
                RecordedResponse(
                    status: row[11] ?? 0, headers: decodeHeaders(row[12]),
                    body: CapturedBody(bytes: row[13] ?? Data(), size: row[14] ?? 0)))
        }
        return Exchange(
            id: row[0], service: row[1], request: request, result: result,
            startedAt: Date(timeIntervalSince1970: row[16]), duration: row[17])
    }
}
