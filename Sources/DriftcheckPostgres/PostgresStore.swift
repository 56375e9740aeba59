import DriftcheckCore
import DriftcheckStore
import Foundation

/// Recordings in a PostgreSQL database a team shares: the same sessions, exchanges and failures
/// as a SQLite store, in the schema `driftcheck`, versioned and migrated on first use (see
/// docs/store-format.md). Exchanges are unique by content hash, so any number of recorders and
/// pushes may write at once without duplicating anything.
// Unchecked: the one connection is used under `lock`.
public final class PostgresStore: RecordingStore, @unchecked Sendable {
    /// The newest schema version this build reads and writes.
    public static let formatVersion = 3

    public let location: String
    private let connection: PostgresConnection
    private let lock = NSLock()

    /// True for `postgres://` and `postgresql://` URLs.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// `url` with its password (in the authority or the query) replaced by `***`; done on the
    /// text, so a URL too broken to parse is hidden as well.
    public static func redacted(_ url: String) -> String {
        var text = url
        for secret in secrets(in: url) { text = text.replacingOccurrences(of: secret, with: "***") }
        return text
    }

    /// The password as it appears in `url`: after `user:` in the authority, and `password=`
    /// values in the query (raw and percent-decoded, since libpq may quote either).
    static func secrets(in url: String) -> [String] {
        var found: [String] = []
        if let scheme = url.range(of: "://") {
            let rest = url[scheme.upperBound...]
            let authorityEnd = rest.firstIndex { "/?#".contains($0) } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                found.append(String(authority[authority.index(after: colon)..<at]))
            }
        }
        if let query = url.firstIndex(of: "?") {
            for pair in url[url.index(after: query)...].split(separator: "&") where pair.hasPrefix("password=") {
                found.append(String(pair.dropFirst("password=".count).prefix { $0 != "#" }))
            }
        }
        found = found.filter { !$0.isEmpty }
        found += found.compactMap { $0.removingPercentEncoding }.filter { !found.contains($0) }
        // Longest first, so a password that contains another is hidden whole.
        return found.sorted { $0.count > $1.count }
    }

    /// Connects and migrates the schema; a database whose `driftcheck` schema is someone else's,
    /// or was written by a newer driftcheck, is refused.
    public init(url: String) throws {
        location = Self.redacted(url)
        connection = try PostgresConnection(url: url, location: location, secrets: Self.secrets(in: url))
        try migrate()
        try run { try Self.makeIncoming($0) }
    }

    /// True when the connection is encrypted.
    public var usesTLS: Bool { locked { connection.usesTLS } }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Runs `body` with the connection, giving server errors the store's name.
    private func run<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try locked {
            do {
                return try body(connection)
            } catch let error as StoreError {
                throw error
            } catch {
                throw StoreError.unusable(path: location, detail: "\(error)")
            }
        }
    }

    /// In a transaction; deadlocks and serialization failures between concurrent writers are
    /// retried (the whole transaction, which is safe: every write here is idempotent).
    private func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try run { connection in
            var attempt = 0
            while true {
                attempt += 1
                try connection.execute("BEGIN")
                do {
                    let value = try body(connection)
                    try connection.execute("COMMIT")
                    return value
                } catch let error as PostgresConnection.ServerError
                    where ["40P01", "40001"].contains(error.state) && attempt < 10
                {
                    try? connection.execute("ROLLBACK")
                    Thread.sleep(forTimeInterval: Double.random(in: 0.005...0.05) * Double(attempt))
                } catch {
                    try? connection.execute("ROLLBACK")
                    throw error
                }
            }
        }
    }

    // MARK: Schema

    /// One step per version, run in order inside the migration's transaction.
    static let migrations: [String] = [
        """
        CREATE SCHEMA IF NOT EXISTS driftcheck;
        CREATE TABLE driftcheck.store_format (version integer NOT NULL);
        INSERT INTO driftcheck.store_format VALUES (0);
        CREATE TABLE driftcheck.session (
            id bigserial PRIMARY KEY,
            uid text NOT NULL UNIQUE,
            started_at double precision NOT NULL,
            ended_at double precision,
            mode text NOT NULL,
            command text,
            tool_version text NOT NULL
        );
        CREATE TABLE driftcheck.exchange (
            id bigserial PRIMARY KEY,
            session_id bigint REFERENCES driftcheck.session(id),
            content_hash bytea NOT NULL,
            service text NOT NULL,
            method text NOT NULL,
            scheme text NOT NULL,
            host text NOT NULL,
            port integer NOT NULL,
            path text NOT NULL,
            query text,
            request_headers text NOT NULL,
            request_body bytea NOT NULL,
            request_body_size bigint NOT NULL,
            status integer,
            response_headers text,
            response_body bytea,
            response_body_size bigint,
            failure text,
            started_at double precision NOT NULL,
            duration double precision NOT NULL
        );
        CREATE UNIQUE INDEX exchange_by_hash ON driftcheck.exchange(content_hash);
        CREATE INDEX exchange_by_service ON driftcheck.exchange(service, id);
        CREATE INDEX exchange_by_endpoint ON driftcheck.exchange(service, method, path);
        CREATE INDEX exchange_by_time ON driftcheck.exchange(started_at);
        """,
        // Version 2: response trailers (HTTP/2, gRPC's status).
        "ALTER TABLE driftcheck.exchange ADD COLUMN response_trailers text",
        // Version 3: protobuf descriptor sets, for decoding gRPC messages by name.
        """
        CREATE TABLE driftcheck.descriptor_set (
            id bigserial PRIMARY KEY, content_hash bytea NOT NULL UNIQUE, bytes bytea NOT NULL)
        """,
    ]

    private func migrate() throws {
        try transaction { connection in
            // One migrator at a time, however many recorders start together.
            _ = try connection.query("SELECT pg_advisory_xact_lock(1146242644)")
            let state = try connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'driftcheck'),
                    to_regclass('driftcheck.store_format') IS NOT NULL,
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = 'driftcheck')::bigint
                """)
            let schemaExists = state.int(0, 0) != 0
            let marked = state.int(0, 1) != 0
            let relations = state.int(0, 2)
            var version = 0
            if marked {
                version = try connection.query("SELECT version FROM driftcheck.store_format").int(0, 0)
            } else if schemaExists && relations > 0 {
                throw StoreError.notAStore(
                    path: location, detail: "its schema driftcheck holds \(relations) objects of another application")
            }
            if version > Self.formatVersion {
                throw StoreError.newerFormat(path: location, version: version, known: Self.formatVersion)
            }
            for step in version..<Self.formatVersion {
                try connection.execute(Self.migrations[step])
                try connection.execute("UPDATE driftcheck.store_format SET version = \(step + 1)")
            }
        }
    }

    // MARK: Sessions

    public func beginSession(mode: String, command: String?, toolVersion: String) throws -> Int64 {
        try run { connection in
            try connection.query(
                """
                INSERT INTO driftcheck.session (uid, started_at, mode, command, tool_version)
                VALUES ($1, $2, $3, $4, $5) RETURNING id
                """,
                [
                    .text(UUID().uuidString.lowercased()), .text(String(Date().timeIntervalSince1970)), .text(mode),
                    command.map(PostgresParameter.text) ?? .null, .text(toolVersion),
                ]
            ).int64(0, 0)
        }
    }

    public func endSession(_ id: Int64) throws {
        _ = try run { connection in
            try connection.query(
                "UPDATE driftcheck.session SET ended_at = $1 WHERE id = $2",
                [.text(String(Date().timeIntervalSince1970)), .text(String(id))])
        }
    }

    // MARK: Writing

    @discardableResult
    public func insert(_ exchanges: [Exchange], session: Int64?) throws -> Int {
        try write(exchanges.map { ($0, ContentHash.of($0), session) })
    }

    @discardableResult
    public func receive(_ rows: [StoredExchange], sessions: [StoredSession]) throws -> Int {
        try transaction { connection in
            var ids: [String: Int64] = [:]
            for session in sessions {
                ids[session.uid] = try connection.query(
                    """
                    INSERT INTO driftcheck.session (uid, started_at, ended_at, mode, command, tool_version)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (uid) DO UPDATE
                        SET ended_at = coalesce(EXCLUDED.ended_at, driftcheck.session.ended_at)
                    RETURNING id
                    """,
                    [
                        .text(session.uid), .text(String(session.startedAt.timeIntervalSince1970)),
                        session.endedAt.map { .text(String($0.timeIntervalSince1970)) } ?? .null,
                        .text(session.mode), session.command.map(PostgresParameter.text) ?? .null,
                        .text(session.toolVersion),
                    ]
                ).int64(0, 0)
            }
            let missing = Set(rows.compactMap(\.session)).subtracting(ids.keys)
            for uid in missing {
                let found = try connection.query("SELECT id FROM driftcheck.session WHERE uid = $1", [.text(uid)])
                if found.count > 0 { ids[uid] = found.int64(0, 0) }
            }
            return try copy(rows.map { ($0.exchange, $0.contentHash, $0.session.flatMap { ids[$0] }) }, connection)
        }
    }

    private func write(_ rows: [(Exchange, Data, Int64?)]) throws -> Int {
        guard !rows.isEmpty else { return 0 }
        return try transaction { connection in try copy(rows, connection) }
    }

    static let copiedColumns = """
        session_id, content_hash, service, method, scheme, host, port, path, query, request_headers, request_body, \
        request_body_size, status, response_headers, response_body, response_body_size, failure, started_at, duration, \
        response_trailers
        """

    /// Binary COPY into a temporary table, then one INSERT that skips hashes already stored:
    /// COPY alone cannot skip duplicates.
    private func copy(_ rows: [(Exchange, Data, Int64?)], _ connection: PostgresConnection) throws -> Int {
        guard !rows.isEmpty else { return 0 }
        try connection.copyIn(
            "COPY incoming (\(Self.copiedColumns)) FROM STDIN (FORMAT binary)", data: BinaryCopy.encode(rows))
        return try connection.query(
            """
            INSERT INTO driftcheck.exchange (\(Self.copiedColumns))
            SELECT \(Self.copiedColumns) FROM incoming ORDER BY ord
            ON CONFLICT (content_hash) DO NOTHING
            """
        ).affected
    }

    /// The connection's staging table, made outside any transaction so that no rollback drops
    /// it: emptied at every commit, gone with the connection.
    private static func makeIncoming(_ connection: PostgresConnection) throws {
        try connection.execute(
            """
            CREATE TEMP TABLE incoming (
                ord bigserial, session_id bigint, content_hash bytea, service text, method text, scheme text,
                host text, port integer, path text, query text, request_headers text, request_body bytea,
                request_body_size bigint, status integer, response_headers text, response_body bytea,
                response_body_size bigint, failure text, started_at double precision, duration double precision,
                response_trailers text
            ) ON COMMIT DELETE ROWS
            """)
    }

    // MARK: Reading

    static let exchangeColumns = """
        e.id, e.service, e.method, e.scheme, e.host, e.port, e.path, e.query, e.request_headers, e.request_body, \
        e.request_body_size, e.status, e.response_headers, e.response_body, e.response_body_size, e.failure, \
        e.started_at, e.duration, e.response_trailers
        """

    static func exchange(_ rows: PostgresRows, _ row: Int) -> Exchange {
        let request = RecordedRequest(
            method: rows.text(row, 2), scheme: rows.text(row, 3), host: rows.text(row, 4), port: rows.int(row, 5),
            path: rows.text(row, 6), query: rows.optionalText(row, 7),
            headers: HeaderColumn.decode(rows.text(row, 8)),
            body: CapturedBody(bytes: rows.bytes(row, 9), size: rows.int(row, 10)))
        let result: ExchangeResult
        if let failure = rows.optionalText(row, 15) {
            result = .failure(ExchangeFailure(stored: failure))
        } else {
            result = .response(
                RecordedResponse(
                    status: rows.optionalInt(row, 11) ?? 0, headers: HeaderColumn.decode(rows.optionalText(row, 12)),
                    body: CapturedBody(
                        bytes: rows.optionalBytes(row, 13) ?? Data(), size: rows.optionalInt(row, 14) ?? 0),
                    trailers: HeaderColumn.decode(rows.optionalText(row, 18))))
        }
        return Exchange(
            id: rows.int64(row, 0), service: rows.text(row, 1), request: request, result: result,
            startedAt: Date(timeIntervalSince1970: rows.double(row, 16)), duration: rows.double(row, 17))
    }

    private func exchanges(_ sql: String, _ parameters: [PostgresParameter]) throws -> [Exchange] {
        try run { connection in
            let rows = try connection.query(sql, parameters)
            return (0..<rows.count).map { Self.exchange(rows, $0) }
        }
    }

    public func exchanges(service: String?, includeFailures: Bool) throws -> [Exchange] {
        var conditions: [String] = []
        var parameters: [PostgresParameter] = []
        if let service {
            parameters.append(.text(service))
            conditions.append("e.service = $\(parameters.count)")
        }
        if !includeFailures { conditions.append("e.failure IS NULL") }
        let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        return try exchanges(
            "SELECT \(Self.exchangeColumns) FROM driftcheck.exchange e\(filter) ORDER BY e.id", parameters)
    }

    public func exchanges(service: String, after afterID: Int64, limit: Int) throws -> [Exchange] {
        try exchanges(
            """
            SELECT \(Self.exchangeColumns) FROM driftcheck.exchange e
            WHERE e.service = $1 AND e.failure IS NULL AND e.id > $2 ORDER BY e.id LIMIT $3
            """, [.text(service), .text(String(afterID)), .text(String(limit))])
    }

    public func services() throws -> [(name: String, exchanges: Int)] {
        try run { connection in
            let rows = try connection.query(
                """
                SELECT service, count(*)::bigint FROM driftcheck.exchange WHERE failure IS NULL
                GROUP BY service ORDER BY service COLLATE "C"
                """)
            return (0..<rows.count).map { (rows.text($0, 0), rows.int($0, 1)) }
        }
    }

    public func count() throws -> Int {
        try run { connection in try connection.query("SELECT count(*)::bigint FROM driftcheck.exchange").int(0, 0) }
    }

    public func distinctPaths(service: String) throws -> [String] {
        try run { connection in
            let rows = try connection.query(
                "SELECT DISTINCT path FROM driftcheck.exchange WHERE service = $1 AND failure IS NULL", [.text(service)]
            )
            return (0..<rows.count).map { rows.text($0, 0) }
        }
    }

    public func shapeSample(service: String, path: String) throws -> ShapeSample? {
        try run { connection in
            let rows = try connection.query(
                """
                SELECT status, response_headers, response_body FROM driftcheck.exchange
                WHERE service = $1 AND path = $2 AND failure IS NULL
                ORDER BY status >= 300, length(response_body) = 0, id LIMIT 1
                """, [.text(service), .text(path)])
            guard rows.count > 0 else { return nil }
            return ShapeSample(
                status: rows.optionalInt(0, 0) ?? 0, headers: HeaderColumn.decode(rows.optionalText(0, 1)),
                body: rows.optionalBytes(0, 2) ?? Data())
        }
    }

    public func pathCounts() throws -> [PathCount] {
        try run { connection in
            let rows = try connection.query(
                """
                SELECT service, method, path, count(*)::bigint, count(failure)::bigint, min(started_at), max(started_at)
                FROM driftcheck.exchange GROUP BY service, method, path
                """)
            return (0..<rows.count).map { row in
                PathCount(
                    service: rows.text(row, 0), method: rows.text(row, 1), path: rows.text(row, 2),
                    exchanges: rows.int(row, 3), failures: rows.int(row, 4),
                    first: Date(timeIntervalSince1970: rows.double(row, 5)),
                    last: Date(timeIntervalSince1970: rows.double(row, 6)))
            }
        }
    }

    // MARK: Transfer

    private static func conditions(_ filter: TransferFilter, after parameters: inout [PostgresParameter]) -> String {
        var sql = ""
        if !filter.services.isEmpty {
            let placeholders = filter.services.map { service -> String in
                parameters.append(.text(service))
                return "$\(parameters.count)"
            }
            sql += " AND e.service IN (\(placeholders.joined(separator: ", ")))"
        }
        if let since = filter.since {
            parameters.append(.text(String(since.timeIntervalSince1970)))
            sql += " AND e.started_at >= $\(parameters.count)"
        }
        return sql
    }

    public func transferPage(after afterID: Int64, limit: Int, filter: TransferFilter) throws -> [StoredExchange] {
        var parameters: [PostgresParameter] = [.text(String(afterID))]
        let conditions = Self.conditions(filter, after: &parameters)
        parameters.append(.text(String(limit)))
        return try run { connection in
            let rows = try connection.query(
                """
                SELECT \(Self.exchangeColumns), e.content_hash, s.uid
                FROM driftcheck.exchange e LEFT JOIN driftcheck.session s ON s.id = e.session_id
                WHERE e.id > $1\(conditions) ORDER BY e.id LIMIT $\(parameters.count)
                """, parameters)
            return (0..<rows.count).map { row in
                StoredExchange(
                    exchange: Self.exchange(rows, row), contentHash: rows.bytes(row, 19),
                    session: rows.optionalText(row, 20))
            }
        }
    }

    public func transferCount(filter: TransferFilter) throws -> Int {
        var parameters: [PostgresParameter] = []
        let conditions = Self.conditions(filter, after: &parameters)
        return try run { connection in
            try connection.query(
                "SELECT count(*)::bigint FROM driftcheck.exchange e WHERE true\(conditions)", parameters
            ).int(0, 0)
        }
    }

    public func sessions(uids: [String]) throws -> [StoredSession] {
        guard !uids.isEmpty else { return [] }
        return try run { connection in
            let placeholders = uids.indices.map { "$\($0 + 1)" }.joined(separator: ", ")
            let rows = try connection.query(
                """
                SELECT uid, started_at, ended_at, mode, command, tool_version FROM driftcheck.session
                WHERE uid IN (\(placeholders))
                """, uids.map(PostgresParameter.text))
            return (0..<rows.count).map { row in
                StoredSession(
                    uid: rows.text(row, 0), startedAt: Date(timeIntervalSince1970: rows.double(row, 1)),
                    endedAt: rows.optionalDouble(row, 2).map(Date.init(timeIntervalSince1970:)),
                    mode: rows.text(row, 3),
                    command: rows.optionalText(row, 4), toolVersion: rows.text(row, 5))
            }
        }
    }

    public func descriptorSets() throws -> [Data] {
        try run { connection in
            let rows = try connection.query("SELECT bytes FROM driftcheck.descriptor_set ORDER BY id")
            return (0..<rows.count).map { rows.bytes($0, 0) }
        }
    }

    public func addDescriptorSet(_ bytes: Data) throws {
        _ = try run { connection in
            try connection.query(
                "INSERT INTO driftcheck.descriptor_set (content_hash, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                [.bytes(ContentHash.of(bytes)), .bytes(bytes)])
        }
    }

    public func close() throws {}
}

/// PostgreSQL's binary COPY format: a signature, then per row a field count and each field as a
/// length (-1 for NULL) and its bytes in network order.
enum BinaryCopy {
    static func encode(_ rows: [(Exchange, Data, Int64?)]) -> Data {
        var out = Data("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]
        out.reserveCapacity(
            rows.reduce(64) { $0 + 512 + $1.0.request.body.bytes.count + ($1.0.response?.body.bytes.count ?? 0) })
        append(Int32(0), to: &out)
        append(Int32(0), to: &out)
        for (exchange, hash, session) in rows {
            let request = exchange.request
            let response = exchange.response
            append(Int16(20), to: &out)
            field(session.map(integer8), &out)
            field(hash, &out)
            field(text(exchange.service), &out)
            field(text(request.method), &out)
            field(text(request.scheme), &out)
            field(text(request.host), &out)
            field(integer4(request.port), &out)
            field(text(request.path), &out)
            field(request.query.map(text), &out)
            field(text(HeaderColumn.encode(request.headers)), &out)
            field(request.body.bytes, &out)
            field(integer8(Int64(request.body.size)), &out)
            field(response.map { integer4($0.status) }, &out)
            field(response.map { text(HeaderColumn.encode($0.headers)) }, &out)
            field(response.map(\.body.bytes), &out)
            field(response.map { integer8(Int64($0.body.size)) }, &out)
            if case .failure(let failure) = exchange.result {
                field(text(failure.stored), &out)
            } else {
                field(nil, &out)
            }
            field(integer8(Int64(bitPattern: exchange.startedAt.timeIntervalSince1970.bitPattern)), &out)
            field(integer8(Int64(bitPattern: exchange.duration.bitPattern)), &out)
            let trailers = response?.trailers.fields.isEmpty == false ? response?.trailers : nil
            field(trailers.map { text(HeaderColumn.encode($0)) }, &out)
        }
        append(Int16(-1), to: &out)
        return out
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to out: inout Data) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func field(_ bytes: Data?, _ out: inout Data) {
        guard let bytes else {
            append(Int32(-1), to: &out)
            return
        }
        append(Int32(bytes.count), to: &out)
        out.append(bytes)
    }

    private static func text(_ value: String) -> Data { Data(value.utf8) }
    private static func integer4(_ value: Int) -> Data { withUnsafeBytes(of: Int32(value).bigEndian) { Data($0) } }
    private static func integer8(_ value: Int64) -> Data { withUnsafeBytes(of: value.bigEndian) { Data($0) } }
}
