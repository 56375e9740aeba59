import CLibPQ
import DriftcheckStore
import Foundation

/// A value sent with a query: text (PostgreSQL parses it for the parameter's type) or raw bytes
/// for a `bytea`.
enum PostgresParameter {
    case text(String)
    case bytes(Data)
    case null
}

/// One libpq connection. Not thread-safe: `PostgresStore` serialises its use.
final class PostgresConnection {
    /// Where errors say they happened: the URL without its password.
    let location: String
    private let secrets: [String]
    private let handle: OpaquePointer

    /// Connects to `url`, a libpq connection URI; every libpq parameter in it (sslmode,
    /// sslrootcert, connect_timeout, …) and libpq's environment (PGPASSWORD, ~/.pgpass) apply.
    /// `secrets` are hidden from every message (libpq may quote the URL it could not parse).
    init(url: String, location: String, secrets: [String]) throws {
        self.location = location
        self.secrets = secrets
        // Earlier keywords are defaults: the URL's own settings override them.
        let keywords = ["connect_timeout", "application_name", "dbname"]
        let values = ["10", "driftcheck", url]
        let connection = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in PQconnectdbParams(keywordPointers, valuePointers, 1) }
        }
        guard let connection else { throw StoreError.unreachable(path: location, detail: "out of memory") }
        guard PQstatus(connection) == CONNECTION_OK else {
            var detail = Self.message(PQerrorMessage(connection))
            for secret in secrets { detail = detail.replacingOccurrences(of: secret, with: "***") }
            PQfinish(connection)
            throw StoreError.unreachable(path: location, detail: detail)
        }
        handle = connection
        // Readable errors whatever the server's verbosity; the server's notices are not for users.
        _ = PQsetErrorVerbosity(handle, PQERRORS_DEFAULT)
        _ = PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    /// True when the connection speaks TLS.
    var usesTLS: Bool { PQsslInUse(handle) == 1 }

    /// libpq's messages end in newlines and may span lines; one line for people.
    static func message(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        let lines = String(cString: text).split(whereSeparator: \.isNewline).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        return lines.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    /// Runs statements without parameters or rows (several may be given, separated by `;`).
    func execute(_ sql: String) throws {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result, sql: sql)
    }

    /// Runs one statement; rows come back in binary form.
    func query(_ sql: String, _ parameters: [PostgresParameter] = []) throws -> PostgresRows {
        let datas: [Data?] = parameters.map { parameter in
            switch parameter {
            case .text(let text): return Data(text.utf8) + [0]
            case .bytes(let bytes): return bytes
            case .null: return nil
            }
        }
        let lengths = parameters.enumerated().map { index, parameter -> Int32 in
            if case .bytes(let bytes) = parameter { return Int32(bytes.count) }
            return Int32((datas[index]?.count ?? 1) - 1)
        }
        let formats = parameters.map { parameter -> Int32 in
            if case .bytes = parameter { return 1 }
            return 0
        }
        let result = withBuffers(datas) { pointers in
            PQexecParams(handle, sql, Int32(parameters.count), nil, pointers, lengths, formats, 1)
        }
        do {
            try check(result, sql: sql)
        } catch {
            PQclear(result)
            throw error
        }
        return PostgresRows(result: result!)
    }

    /// `COPY … FROM STDIN (FORMAT binary)` with `data` as the whole stream.
    func copyIn(_ sql: String, data: Data) throws {
        let start = PQexec(handle, sql)
        guard PQresultStatus(start) == PGRES_COPY_IN else {
            defer { PQclear(start) }
            try check(start, sql: sql)
            throw failure("COPY did not start")
        }
        PQclear(start)
        var sent = true
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count && sent {
                let chunk = min(1 << 20, bytes.count - offset)
                let base = bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self)
                sent = PQputCopyData(handle, base, Int32(chunk)) == 1
                offset += chunk
            }
        }
        let ended = PQputCopyEnd(handle, sent ? nil : "client failed to send") == 1
        var firstError: Error?
        while let result = PQgetResult(handle) {
            if firstError == nil {
                do { try check(result, sql: sql) } catch { firstError = error }
            }
            PQclear(result)
        }
        if let firstError { throw firstError }
        guard sent, ended else { throw failure(Self.message(PQerrorMessage(handle))) }
    }

    /// The SQLSTATE of a failed statement, for retrying deadlocks.
    struct ServerError: Error, CustomStringConvertible {
        var state: String
        var message: String
        var description: String { message }
    }

    private func check(_ result: OpaquePointer?, sql: String) throws {
        guard let result else { throw failure(Self.message(PQerrorMessage(handle))) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_COPY_IN: return
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let message = Self.message(PQresultErrorMessage(result))
            if PQstatus(handle) != CONNECTION_OK {
                throw StoreError.unreachable(path: location, detail: message)
            }
            throw ServerError(state: state, message: message)
        }
    }

    private func failure(_ detail: String) -> Error {
        if PQstatus(handle) != CONNECTION_OK { return StoreError.unreachable(path: location, detail: detail) }
        return StoreError.unusable(path: location, detail: detail)
    }
}

/// A result's rows in binary form; freed with the value.
final class PostgresRows {
    private let result: OpaquePointer

    init(result: OpaquePointer) { self.result = result }
    deinit { PQclear(result) }

    var count: Int { Int(PQntuples(result)) }
    /// Rows an INSERT, UPDATE or DELETE touched.
    var affected: Int { Int(String(cString: PQcmdTuples(result))) ?? 0 }

    func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(result, Int32(row), Int32(column)) == 1 }

    private func raw(_ row: Int, _ column: Int) -> UnsafeRawBufferPointer {
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        return UnsafeRawBufferPointer(start: PQgetvalue(result, Int32(row), Int32(column)), count: length)
    }

    private func integer(_ row: Int, _ column: Int) -> Int64 {
        let bytes = raw(row, column)
        var value: Int64 = 0
        for byte in bytes { value = value << 8 | Int64(byte) }
        // Sign-extend int2 and int4 columns.
        let bits = bytes.count * 8
        if bits > 0 && bits < 64 && value & (1 << (bits - 1)) != 0 { value -= 1 << bits }
        return value
    }

    func int64(_ row: Int, _ column: Int) -> Int64 { integer(row, column) }
    func int(_ row: Int, _ column: Int) -> Int { Int(integer(row, column)) }
    func optionalInt(_ row: Int, _ column: Int) -> Int? { isNull(row, column) ? nil : int(row, column) }

    func double(_ row: Int, _ column: Int) -> Double {
        Double(bitPattern: UInt64(bitPattern: integer(row, column)))
    }

    func optionalDouble(_ row: Int, _ column: Int) -> Double? { isNull(row, column) ? nil : double(row, column) }

    func text(_ row: Int, _ column: Int) -> String { String(decoding: raw(row, column), as: UTF8.self) }
    func optionalText(_ row: Int, _ column: Int) -> String? { isNull(row, column) ? nil : text(row, column) }
    func bytes(_ row: Int, _ column: Int) -> Data { Data(raw(row, column)) }
    func optionalBytes(_ row: Int, _ column: Int) -> Data? { isNull(row, column) ? nil : bytes(row, column) }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { for copy in copies { free(copy) } }
    return body(copies.map { UnsafePointer($0) } + [nil])
}

private func withBuffers<R>(_ datas: [Data?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutableRawPointer?] = datas.map { data in
        guard let data else { return nil }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 1)
        data.copyBytes(to: buffer.assumingMemoryBound(to: UInt8.self), count: data.count)
        return buffer
    }
    defer { for copy in copies { copy?.deallocate() } }
    return body(copies.map { $0.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } })
}
