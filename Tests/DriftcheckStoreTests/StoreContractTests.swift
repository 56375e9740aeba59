import DriftcheckCore
import DriftcheckPostgres
import DriftcheckTestSupport
import Foundation
import Testing

@testable import DriftcheckStore

/// The two engines a store can live on. Every contract test runs on both.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// A new, empty store of `kind`, and how to open it again.
struct FreshStore {
    let location: String
    let directory: TemporaryDirectory

    static func make(_ kind: StoreKind) async throws -> FreshStore {
        let directory = try TemporaryDirectory()
        switch kind {
        case .sqlite: return FreshStore(location: directory.file("store.sqlite"), directory: directory)
        case .postgres:
            let server = try await PostgresServer.shared.value
            return FreshStore(location: try await server.createDatabase(), directory: directory)
        }
    }

    func open() throws -> any RecordingStore {
        PostgresStore.isURL(location) ? try PostgresStore(url: location) : try SQLiteStore(path: location)
    }
}

/// Exchanges that exercise every column: binary bodies, truncation, failures, odd headers.
func contractExchanges() -> [Exchange] {
    var binary = sampleExchange(path: "/blobs/1", at: Date(timeIntervalSince1970: 1_790_000_000.123456789))
    binary.request.method = "PUT"
    binary.request.query = nil
    binary.request.body = CapturedBody(bytes: Data((0...255).map { UInt8($0) }))
    binary.result = .response(
        RecordedResponse(
            status: 204,
            headers: HeaderFields([("X-Quote", #"a "b" \ c"#), ("X-Unicode", "café ✓ 😀"), ("X-Empty", "")]),
            body: CapturedBody(), trailers: HeaderFields([("grpc-status", "5"), ("grpc-message", "not found: é")])))
    var truncated = sampleExchange(path: "/big", at: Date(timeIntervalSince1970: 1_790_000_001))
    truncated.request.body = CapturedBody(bytes: Data("abc".utf8), size: 5_000_000)
    truncated.request.query = ""
    let failed = Exchange(
        service: "orders", request: sampleExchange().request,
        result: .failure(ExchangeFailure(.connect, "connection refused")),
        startedAt: Date(timeIntervalSince1970: 1_790_000_002), duration: 0.001)
    let payments = sampleExchange(
        service: "payments", path: "/charges/ch_1", body: #"{"id":"ch_1","amount":5}"#,
        at: Date(timeIntervalSince1970: 1_790_000_003))
    return [sampleExchange(), binary, truncated, failed, payments]
}

private func withoutIDs(_ exchanges: [Exchange]) -> [Exchange] {
    exchanges.map {
        var copy = $0
        copy.id = nil
        return copy
    }
}

@Suite struct StoreContractTests {
    @Test(arguments: StoreKind.allCases)
    func exchangesRoundTripExactlyInRecordedOrder(kind: StoreKind) async throws {
        let fresh = try await FreshStore.make(kind)
        defer { fresh.directory.remove() }
        let store = try fresh.open()
        let session = try store.beginSession(mode: "reverse", command: "make run", toolVersion: "test")
        #expect(try store.insert(contractExchanges(), session: session) == 5)
        try store.endSession(session)
        try store.close()

        let reopened = try fresh.open()
        let read = try reopened.exchanges()
        #expect(withoutIDs(read) == contractExchanges())
        let ids = read.compactMap(\.id)
        #expect(ids.count == 5 && ids == ids.sorted())
        #expect(read[2].request.body.isTruncated && read[2].request.query == "")
        #expect(read[1].request.query == nil)
        #expect(try reopened.exchanges(includeFailures: false).count == 4)
        #expect(try reopened.exchanges(service: "payments").map(\.request.path) == ["/charges/ch_1"])
        #expect(try reopened.exchanges(service: "nobody").isEmpty)
        #expect(try reopened.count() == 5)
        #expect(try reopened.services().map(\.name) == ["orders", "payments"])
        #expect(try reopened.services().map(\.exchanges) == [3, 1])
    }

    @Test(arguments: StoreKind.allCases)
    func theSameExchangeIsStoredOnce(kind: StoreKind) async throws {
        let fresh = try await FreshStore.make(kind)
        defer { fresh.directory.remove() }
        let store = try fresh.open()
        let exchange = sampleExchange()
        #expect(try store.insert([exchange, exchange], session: nil) == 1)
        #expect(try store.insert([exchange], session: nil) == 0)
        var later = exchange
        later.startedAt = later.startedAt.addingTimeInterval(1)
        // The same request a second later is another exchange: counts are evidence.
        #expect(try store.insert([later], session: nil) == 1)
        #expect(try store.count() == 2)
    }

    @Test(arguments: StoreKind.allCases)
    func pagesWalkOneServicesResponsesInOrder(kind: StoreKind) async throws {
        let fresh = try await FreshStore.make(kind)
        defer { fresh.directory.remove() }
        let store = try fresh.open()
        var batch: [Exchange] = []
        for index in 0..<25 {
            let time = Date(timeIntervalSince1970: 1_790_000_000 + Double(index))
            batch.append(sampleExchange(service: index % 2 == 0 ? "orders" : "users", path: "/x/\(index)", at: time))
        }
        batch.append(contractExchanges()[3])
        try store.insert(batch, session: nil)
        var seen: [String] = []
        var after: Int64 = 0
        while true {
            let page = try store.exchanges(service: "orders", after: after, limit: 4)
            guard let last = page.last?.id else { break }
            #expect(page.count <= 4)
            seen += page.map(\.request.path)
            after = last
        }
        #expect(seen == stride(from: 0, to: 25, by: 2).map { "/x/\($0)" })
    }

    @Test(arguments: StoreKind.allCases)
    func endpointsAreLearnedTheSameWay(kind: StoreKind) async throws {
        let fresh = try await FreshStore.make(kind)
        defer { fresh.directory.remove() }
        let store = try fresh.open()
        try store.insert(
            [
                sampleExchange(path: "/orders/1", at: Date(timeIntervalSince1970: 100)),
                sampleExchange(path: "/orders/2", at: Date(timeIntervalSince1970: 300)),
                sampleExchange(path: "/orders", at: Date(timeIntervalSince1970: 200)),
                sampleExchange(service: "payments", path: "/charges/ch_12345", at: Date(timeIntervalSince1970: 50)),
                Exchange(
                    service: "payments", request: sampleExchange(path: "/charges/ch_9").request,
                    result: .failure(ExchangeFailure(.timeout, "no answer")),
                    startedAt: Date(timeIntervalSince1970: 60),
                    duration: 1),
            ], session: nil)
        let summaries = try store.summaries()
        #expect(summaries.map(\.endpoint) == ["GET /orders", "GET /orders/{id}", "GET /charges/{id}"])
        #expect(summaries[1].exchanges == 2)
        #expect(summaries[1].firstSeen == Date(timeIntervalSince1970: 100))
        #expect(summaries[1].lastSeen == Date(timeIntervalSince1970: 300))
        #expect(summaries[2].service == "payments")
        #expect(summaries[2].exchanges == 2 && summaries[2].failures == 1)
        #expect(try store.catalog(service: "orders").endpoint(method: "GET", path: "/orders/77") == "GET /orders/{id}")
    }

    @Test(arguments: StoreKind.allCases)
    func aStoreFromANewerDriftcheckIsRefused(kind: StoreKind) async throws {
        let fresh = try await FreshStore.make(kind)
        defer { fresh.directory.remove() }
        try fresh.open().close()
        switch kind {
        case .sqlite: try runSQLite(fresh.location, "PRAGMA user_version = 99;")
        case .postgres:
            try await PostgresServer.shared.value.psql(
                fresh.location, "UPDATE driftcheck.store_format SET version = 99")
        }
        #expect {
            try fresh.open()
        } throws: { error in
            guard case StoreError.newerFormat(let location, 99, _) = error else { return false }
            return "\(error)".hasPrefix(location) && !location.isEmpty
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anotherApplicationsDatabaseIsRefusedUntouched(kind: StoreKind) async throws {
        let fresh = try await FreshStore.make(kind)
        defer { fresh.directory.remove() }
        switch kind {
        case .sqlite: try runSQLite(fresh.location, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        case .postgres:
            try await PostgresServer.shared.value.psql(
                fresh.location, "CREATE SCHEMA driftcheck; CREATE TABLE driftcheck.exchange (x int)")
        }
        #expect {
            try fresh.open()
        } throws: { error in
            if case StoreError.notAStore = error { return true }
            return false
        }
        if kind == .postgres {
            let tables = try await PostgresServer.shared.value.psql(
                fresh.location, "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'driftcheck'")
            #expect(tables == "exchange")
        }
    }

    /// Copies between every pair of engines keep content, hashes and sessions; again adds nothing.
    @Test(arguments: [(StoreKind.sqlite, StoreKind.postgres), (.postgres, .sqlite), (.postgres, .postgres)])
    func aCopyKeepsEverythingAndTwiceAddsNothing(from: StoreKind, to: StoreKind) async throws {
        let source = try await FreshStore.make(from)
        let target = try await FreshStore.make(to)
        defer {
            source.directory.remove()
            target.directory.remove()
        }
        let origin = try source.open()
        let session = try origin.beginSession(mode: "wrapped", command: "npm start", toolVersion: "test")
        try origin.insert(contractExchanges(), session: session)
        // A descriptor set is stored once, and travels with the exchanges.
        try origin.addDescriptorSet(Data([0x0A, 0x01, 0x61]))
        try origin.addDescriptorSet(Data([0x0A, 0x01, 0x61]))
        let copy = try target.open()
        let first = try StoreTransfer.copy(from: origin, to: copy, pageSize: 2, countFirst: true)
        #expect(first.read == 5 && first.added == 5 && first.total == 5)
        #expect(withoutIDs(try copy.exchanges()) == contractExchanges())
        #expect(try copy.descriptorSets() == [Data([0x0A, 0x01, 0x61])])
        let hashes = { (store: any RecordingStore) in
            try store.transferPage(after: 0, limit: 100, filter: TransferFilter()).map(\.contentHash)
        }
        #expect(try hashes(copy) == hashes(origin))
        #expect(try hashes(copy) == contractExchanges().map(ContentHash.of))

        // The session travels by uid; its end, recorded later, follows on the next copy.
        let uid = try #require(try origin.transferPage(after: 0, limit: 1, filter: TransferFilter()).first?.session)
        #expect(try copy.sessions(uids: [uid]).first?.endedAt == nil)
        try origin.endSession(session)
        let second = try StoreTransfer.copy(from: origin, to: copy)
        #expect(second.read == 5 && second.added == 0)
        try copy.receive([], sessions: try origin.sessions(uids: [uid]))
        let copied = try #require(try copy.sessions(uids: [uid]).first)
        #expect(copied == (try origin.sessions(uids: [uid]).first))
        #expect(copied.command == "npm start" && copied.endedAt != nil)
        #expect(try copy.count() == 5)
    }

    @Test(arguments: StoreKind.allCases)
    func filtersChooseByServiceAndTime(kind: StoreKind) async throws {
        let fresh = try await FreshStore.make(kind)
        defer { fresh.directory.remove() }
        let store = try fresh.open()
        try store.insert(contractExchanges(), session: nil)
        let services = TransferFilter(services: ["payments"])
        #expect(try store.transferCount(filter: services) == 1)
        #expect(try store.transferPage(after: 0, limit: 10, filter: services).map(\.exchange.service) == ["payments"])
        let recent = TransferFilter(since: Date(timeIntervalSince1970: 1_790_000_001))
        #expect(try store.transferCount(filter: recent) == 3)
        let both = TransferFilter(services: ["orders", "nobody"], since: Date(timeIntervalSince1970: 1_790_000_001))
        #expect(
            try store.transferPage(after: 0, limit: 10, filter: both).map(\.exchange.request.path) == [
                "/big", "/orders/1",
            ])
    }
}
