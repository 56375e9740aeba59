import Crypto
import DriftcheckCore
import Foundation

/// Why a store could not be used. Every case names the store: a file path, or a URL with its
/// password hidden.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    case notAStore(path: String, detail: String)
    case corrupt(path: String, detail: String)
    case newerFormat(path: String, version: Int, known: Int)
    case unusable(path: String, detail: String)
    /// The database server could not be reached or refused us.
    case unreachable(path: String, detail: String)

    public var description: String {
        switch self {
        case .notAStore(let path, let detail): return "\(path): not a driftcheck store (\(detail))"
        case .corrupt(let path, let detail): return "\(path): the store is corrupt (\(detail))"
        case .newerFormat(let path, let version, let known):
            return "\(path): store format \(version) was written by a newer driftcheck (this one reads up to \(known))"
        case .unusable(let path, let detail): return "\(path): cannot open the store (\(detail))"
        case .unreachable(let path, let detail): return "\(path): cannot reach the store (\(detail))"
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

/// A recording session as it travels between stores: its `uid` is the same everywhere, its row
/// id is each store's own.
public struct StoredSession: Sendable, Equatable {
    public var uid: String
    public var startedAt: Date
    public var endedAt: Date?
    public var mode: String
    public var command: String?
    public var toolVersion: String

    public init(
        uid: String, startedAt: Date, endedAt: Date?, mode: String, command: String?, toolVersion: String
    ) {
        self.uid = uid
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.mode = mode
        self.command = command
        self.toolVersion = toolVersion
    }
}

/// An exchange with what identifies it across stores: the content hash given when it was first
/// stored, and the uid of its session.
public struct StoredExchange: Sendable {
    public var exchange: Exchange
    public var contentHash: Data
    public var session: String?

    public init(exchange: Exchange, contentHash: Data, session: String?) {
        self.exchange = exchange
        self.contentHash = contentHash
        self.session = session
    }
}

/// Which exchanges `push` and `pull` carry: some services, and/or those since a time.
public struct TransferFilter: Sendable, Equatable {
    public var services: [String]
    public var since: Date?

    public init(services: [String] = [], since: Date? = nil) {
        self.services = services
        self.since = since
    }
}

/// Exchanges and failures of one (service, method, raw path), for `list`.
public struct PathCount: Sendable, Equatable {
    public var service: String
    public var method: String
    public var path: String
    public var exchanges: Int
    public var failures: Int
    public var first: Date
    public var last: Date

    public init(
        service: String, method: String, path: String, exchanges: Int, failures: Int, first: Date, last: Date
    ) {
        self.service = service
        self.method = method
        self.path = path
        self.exchanges = exchanges
        self.failures = failures
        self.first = first
        self.last = last
    }
}

/// The answer that stands for a path's shape when endpoints are learned.
public struct ShapeSample: Sendable {
    public var status: Int
    public var headers: HeaderFields
    public var body: Data

    public init(status: Int, headers: HeaderFields, body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Where recordings live: a SQLite file on this machine (`SQLiteStore`) or a PostgreSQL database
/// a team shares. Every command reads and writes through this one interface; the rules that do
/// not depend on the engine (endpoint learning, summaries, content hashes) live here once.
public protocol RecordingStore: AnyObject, Sendable {
    /// The store as people should see it: a path, or a URL without its password.
    var location: String { get }

    /// Starts a recording session; exchanges written with its id point at it.
    func beginSession(mode: String, command: String?, toolVersion: String) throws -> Int64
    func endSession(_ id: Int64) throws

    /// Writes `exchanges` in one transaction; one already stored (same content hash) is skipped.
    /// Returns how many were added.
    @discardableResult
    func insert(_ exchanges: [Exchange], session: Int64?) throws -> Int

    /// Exchanges in recorded order, optionally of one service, optionally without failures.
    func exchanges(service: String?, includeFailures: Bool) throws -> [Exchange]
    /// One page of successful exchanges of `service` after row `afterID`, in recorded order.
    func exchanges(service: String, after afterID: Int64, limit: Int) throws -> [Exchange]
    /// Recorded services with their count of successful exchanges, by name.
    func services() throws -> [(name: String, exchanges: Int)]
    func count() throws -> Int

    /// Distinct paths of `service`'s successful exchanges.
    func distinctPaths(service: String) throws -> [String]
    /// The first successful answer with a body for `path`, preferring 2xx.
    func shapeSample(service: String, path: String) throws -> ShapeSample?
    /// Counts per (service, method, raw path).
    func pathCounts() throws -> [PathCount]

    /// One page of exchanges after row `afterID` that `filter` admits, with their identities.
    func transferPage(after afterID: Int64, limit: Int, filter: TransferFilter) throws -> [StoredExchange]
    /// How many exchanges `filter` admits.
    func transferCount(filter: TransferFilter) throws -> Int
    func sessions(uids: [String]) throws -> [StoredSession]
    /// Stores exchanges from another store, keeping their hashes; sessions are matched by uid
    /// (created, or given their end time). Returns how many exchanges were new here.
    @discardableResult
    func receive(_ rows: [StoredExchange], sessions: [StoredSession]) throws -> Int

    /// Protobuf descriptor sets recorded with gRPC traffic (`record --proto-descriptors`), each once.
    func descriptorSets() throws -> [Data]
    func addDescriptorSet(_ bytes: Data) throws

    func close() throws
}

extension RecordingStore {
    public func exchanges(service: String? = nil) throws -> [Exchange] {
        try exchanges(service: service, includeFailures: true)
    }

    public func exchanges(includeFailures: Bool) throws -> [Exchange] {
        try exchanges(service: nil, includeFailures: includeFailures)
    }

    /// Hands `body` the exchanges `filter` admits, a page at a time, in recorded order: memory
    /// holds one page however large the store.
    public func forEachPage(
        filter: TransferFilter = TransferFilter(), includeFailures: Bool, pageSize: Int = 2000,
        _ body: ([Exchange]) throws -> Void
    ) throws {
        var after: Int64 = 0
        while true {
            let page = try transferPage(after: after, limit: pageSize, filter: filter)
            guard let last = page.last?.exchange.id else { return }
            after = last
            let exchanges = page.map(\.exchange)
            try body(includeFailures ? exchanges : exchanges.filter { $0.response != nil })
        }
    }

    /// The endpoint templates of `service`, learned from every path it recorded and from the
    /// routes its mocks declare: the one answer to "which endpoint is this request" for `list`,
    /// `compare`, reports and exports alike.
    public func catalog(service: String, declared: [DeclaredRoute] = []) throws -> EndpointCatalog {
        let paths = try distinctPaths(service: service)
        return EndpointCatalog.learn(paths: paths, declared: declared) { path in
            guard let sample = try? self.shapeSample(service: service, path: path) else { return nil }
            if sample.status >= 300 { return TemplateLearner.failuresOnly }
            guard !sample.body.isEmpty else { return nil }
            let type = MediaType.of(sample.headers)
            guard type == nil || MediaType.isJSON(type), let body = try? JSONValue.parse(sample.body) else {
                return nil
            }
            return TemplateLearner.keyPaths(of: body)
        }
    }

    /// Services and templated endpoints with counts and first/last seen, sorted.
    public func summaries() throws -> [EndpointSummary] {
        var merged: [String: EndpointSummary] = [:]
        var catalogs: [String: EndpointCatalog] = [:]
        for row in try pathCounts() {
            if catalogs[row.service] == nil { catalogs[row.service] = try catalog(service: row.service) }
            let endpoint = catalogs[row.service]!.endpoint(method: row.method, path: row.path)
            let key = "\(row.service) \(endpoint)"
            if var summary = merged[key] {
                summary.exchanges += row.exchanges
                summary.failures += row.failures
                summary.firstSeen = min(summary.firstSeen, row.first)
                summary.lastSeen = max(summary.lastSeen, row.last)
                merged[key] = summary
            } else {
                merged[key] = EndpointSummary(
                    service: row.service, endpoint: endpoint, exchanges: row.exchanges, failures: row.failures,
                    firstSeen: row.first, lastSeen: row.last)
            }
        }
        return merged.values.sorted { ($0.service, $0.endpoint) < ($1.service, $1.endpoint) }
    }
}

/// The identity of an exchange's content: SHA-256 over every stored field but the row id and
/// the session, so the same exchange pushed twice, or pulled back, is recognised.
public enum ContentHash {
    public static func of(_ exchange: Exchange) -> Data {
        of(
            exchange, requestHeaders: HeaderColumn.encode(exchange.request.headers),
            responseHeaders: exchange.response.map { HeaderColumn.encode($0.headers) })
    }

    /// With the header columns already encoded, as the stores have them when they insert.
    static func of(_ exchange: Exchange, requestHeaders: String, responseHeaders: String?) -> Data {
        var hasher = SHA256()
        func add(_ text: String?) {
            guard var text else {
                add(integer: -1)
                return
            }
            add(integer: Int64(text.utf8.count))
            // The bytes in place: a Data made of them cost an allocation and a copy per field.
            text.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        func add(integer: Int64) {
            withUnsafeBytes(of: integer.bigEndian) { hasher.update(bufferPointer: $0) }
        }
        func add(bytes: Data) {
            add(integer: Int64(bytes.count))
            bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        let request = exchange.request
        add(exchange.service)
        add(request.method)
        add(request.scheme)
        add(request.host)
        add(integer: Int64(request.port))
        add(request.path)
        add(request.query)
        add(requestHeaders)
        add(bytes: request.body.bytes)
        add(integer: Int64(request.body.size))
        switch exchange.result {
        case .response(let response):
            add(integer: Int64(response.status))
            add(responseHeaders)
            add(bytes: response.body.bytes)
            add(integer: Int64(response.body.size))
            // Only when present, so that hashes given before trailers were stored stay valid.
            if !response.trailers.fields.isEmpty {
                add(integer: -3)
                add(HeaderColumn.encode(response.trailers))
            }
        case .failure(let failure):
            add(integer: -2)
            add(failure.stored)
        }
        add(integer: Int64(bitPattern: exchange.startedAt.timeIntervalSince1970.bitPattern))
        add(integer: Int64(bitPattern: exchange.duration.bitPattern))
        return Data(hasher.finalize())
    }
}

extension ContentHash {
    /// The identity of a blob stored once (a descriptor set).
    public static func of(_ bytes: Data) -> Data { Data(SHA256.hash(data: bytes)) }
}

/// Headers as both stores keep them: a JSON array of `[name, value]` pairs in wire order.
public enum HeaderColumn {
    /// Written directly: this runs for every stored exchange.
    public static func encode(_ headers: HeaderFields) -> String {
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

    public static func decode(_ text: String?) -> HeaderFields {
        guard let text, case .array(let items)? = try? JSONValue.parse(text) else { return HeaderFields() }
        return HeaderFields(
            fields: items.compactMap { item in
                guard case .array(let pair) = item, pair.count == 2, case .string(let name) = pair[0],
                    case .string(let value) = pair[1]
                else { return nil }
                return .init(name, value)
            })
    }
}
