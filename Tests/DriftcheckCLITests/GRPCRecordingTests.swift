import DriftcheckCore
import DriftcheckDemo
import DriftcheckGRPC
import DriftcheckProcess
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// gRPC's length-prefixed messages in a body: a compressed flag, a 4-byte length, the bytes.
func grpcFrames(_ body: Data) -> [Data] {
    var frames: [Data] = []
    var bytes = body[...]
    while bytes.count >= 5 {
        let length = bytes.dropFirst().prefix(4).reduce(0) { $0 << 8 | Int($1) }
        let start = bytes.startIndex + 5
        guard bytes.endIndex - start >= length else { break }
        frames.append(Data(bytes[start..<start + length]))
        bytes = bytes[(start + length)...]
    }
    return frames
}

/// Records what the grpcio client does (`arguments`) through `driftcheck record` into `store`;
/// the client's output.
func recordGRPC(
    _ server: GRPCServer, into store: String, calling arguments: [String], in directory: TemporaryDirectory,
    options: [String] = []
) async throws -> [String] {
    let recorder = try DriftcheckBinary.start(
        ["record", "--store", store, "--upstream", "recs=h2c://127.0.0.1:\(server.port)", "--listen", "127.0.0.1:0"]
            + options, in: directory)
    let output: [String]
    do {
        let port = try await recorder.listeners(1)[0]
        output = try await GRPCServer.client("127.0.0.1:\(port)", arguments, in: directory)
    } catch {
        recorder.process.signalGroup(SIGKILL)
        throw error
    }
    recorder.process.signalGroup(SIGINT)
    #expect(await recorder.process.wait() == 0, "\(recorder.output)")
    return output
}

/// A grpcio server serving TLS (its CA in `directory/upstream-ca.pem`) and a new driftcheck CA
/// in `directory/ca`.
func tlsServerAndCA(in directory: TemporaryDirectory) async throws -> (GRPCServer, String) {
    let server = try await GRPCServer.start(in: directory, tls: true)
    let ca = directory.file("ca")
    let made = try await DriftcheckBinary.run(["ca", "init", "--ca-dir", ca], in: directory)
    guard made.status == 0 else {
        server.stop()
        throw ClientError(description: "driftcheck ca init failed: \(made.output)")
    }
    return (server, ca)
}

@Suite struct GRPCRecordingTests {
    /// A real grpcio client and server, `driftcheck record` between them over h2c: every call
    /// kind answered exactly as without the recorder, and stored with every message in order.
    @Test func unaryStreamingAndBidirectionalCallsAreRecordedWithEveryMessage() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let direct = try await GRPCServer.client("127.0.0.1:\(server.port)", ["all"], in: directory)
        #expect(direct.count == 8)

        let store = directory.file("grpc.sqlite")
        let recorder = try DriftcheckBinary.start(
            [
                "record", "--store", store, "--upstream", "recs=h2c://127.0.0.1:\(server.port)",
                "--upstream", "legacy=http://127.0.0.1:\(server.port)", "--listen", "127.0.0.1:0", "--listen",
                "127.0.0.1:0",
            ], in: directory)
        let ports = try await recorder.listeners(2)
        let recorded = try await GRPCServer.client("127.0.0.1:\(ports[0])", ["all"], in: directory)
        #expect(recorded == direct)
        // An http:// upstream reached by an h2c client is spoken to in h2c.
        let legacy = try await GRPCServer.client("127.0.0.1:\(ports[1])", ["unary"], in: directory)
        #expect(legacy == [direct[0]])
        // Client-streaming: four messages up, one answer.
        let upload = try await GRPCServer.client("127.0.0.1:\(ports[0])", ["upload"], in: directory)
        #expect(upload.count == 1 && upload[0].contains("part 0 + part 1 + part 2 + part 3"))
        recorder.process.signalGroup(SIGINT)
        #expect(await recorder.process.wait() == 0, "\(recorder.output)")

        let exchanges = try SQLiteStore(path: store).exchanges()
        #expect(exchanges.map(\.service) == ["recs", "recs", "recs", "recs", "legacy", "recs"])
        #expect(
            exchanges.map(\.request.path) == [
                "/shop.v1.Recommendations/Get", "/shop.v1.Recommendations/Get", "/shop.v1.Recommendations/List",
                "/shop.v1.Recommendations/Chat", "/shop.v1.Recommendations/Get", "/shop.v1.Recommendations/Upload",
            ])
        let uploaded = grpcFrames(exchanges[5].request.body.bytes).map { String(decoding: $0, as: UTF8.self) }
        #expect(uploaded.count == 4 && uploaded.enumerated().allSatisfy { $1.contains("part \($0)") })
        #expect(grpcFrames(try #require(exchanges[5].response).body.bytes).count == 1)
        #expect(exchanges.allSatisfy { $0.request.method == "POST" && $0.request.scheme == "http" })
        #expect(exchanges.allSatisfy { $0.request.headers["content-type"] == "application/grpc" })
        #expect(exchanges.allSatisfy { $0.request.headers["te"] == "trailers" })
        let responses = exchanges.compactMap(\.response)
        #expect(responses.count == 6)
        #expect(
            responses.map { $0.trailers["grpc-status"] ?? $0.headers["grpc-status"] } == ["0", "5", "0", "0", "0", "0"])
        #expect(responses.allSatisfy { $0.headers["transfer-encoding"] == nil })
        #expect(responses[1].headers["grpc-message"] == "no such customer")
        // Messages in order: one each way for Get, three answers for List, three each way for Chat.
        #expect(grpcFrames(exchanges[0].request.body.bytes).count == 1)
        #expect(grpcFrames(responses[0].body.bytes).count == 1)
        let listed = grpcFrames(responses[2].body.bytes)
        #expect(listed.count == 3)
        #expect(listed.enumerated().allSatisfy { String(decoding: $1, as: UTF8.self).contains("SKU-c0-\($0)") })
        let chatIn = grpcFrames(exchanges[3].request.body.bytes).map { String(decoding: $0, as: UTF8.self) }
        let chatOut = grpcFrames(responses[3].body.bytes).map { String(decoding: $0, as: UTF8.self) }
        #expect(chatIn.enumerated().allSatisfy { $1.contains("hello \($0)") } && chatIn.count == 3)
        #expect(chatOut.enumerated().allSatisfy { $1.contains("re: hello \($0)") } && chatOut.count == 3)
    }

    /// A server stream that goes quiet for longer than `--upstream-timeout` (2.5 s against 1 s)
    /// is not cut: a call with a deadline (`grpc-timeout`, 30 s) waits up to it, one without a
    /// deadline (a watch) as long as its client does. Before, both were failed at 1 s.
    @Test func aQuietServerStreamIsTimedByItsClientsDeadline() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory, drift: ["slow-stream"])
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        let (recorder, port) = try await HostileHTTP2Tests.recorder(
            of: server, store: store, in: directory, "--upstream-timeout", "1")
        for kind in ["stream", "watch"] {
            let messages = try await GRPCServer.client("127.0.0.1:\(port)", [kind], in: directory)
            #expect(messages.count == 3 && messages[2].contains("SKU-c0-2"), "\(kind): \(messages)")
        }
        recorder.process.signalGroup(SIGINT)
        #expect(await recorder.process.wait() == 0, "\(recorder.output)")
        let exchanges = try SQLiteStore(path: store).exchanges()
        #expect(exchanges.count == 2)
        #expect(exchanges.compactMap(\.response).map { grpcFrames($0.body.bytes).count } == [3, 3])
        #expect(exchanges.map { $0.request.headers["grpc-timeout"] != nil } == [true, false])
    }

    /// A gRPC service behind TLS (grpcio with its own CA): an h2c client's calls go on to an
    /// `https://` upstream as h2 chosen by ALPN, and a TLS client whose dependency matches
    /// `--intercept-tls` is offered h2 by ALPN with driftcheck's certificate; both recorded as
    /// https with every message, answered exactly as without the recorder.
    @Test func grpcOverTLSIsRecordedToHTTPSUpstreamsAndInsideInterceptedTLS() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (server, ca) = try await tlsServerAndCA(in: directory)
        defer { server.stop() }
        let upstreamCA = directory.file("upstream-ca.pem")
        let direct = try await GRPCServer.client(
            "127.0.0.1:\(server.port)", ["all"], in: directory, trusting: upstreamCA, name: "grpc.test")
        #expect(direct.count == 8)

        let store = directory.file("grpc.sqlite")
        let upstream = "https://grpc.test:\(server.port)"
        let recorder = try DriftcheckBinary.start(
            [
                "record", "--store", store, "--upstream", "recs=\(upstream)", "--upstream", "secure=\(upstream)",
                "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--resolve", "grpc.test=127.0.0.1",
                "--upstream-ca", upstreamCA, "--intercept-tls", "grpc.test", "--ca-dir", ca,
            ], in: directory)
        let ports = try await recorder.listeners(2)
        let overH2C = try await GRPCServer.client("127.0.0.1:\(ports[0])", ["all"], in: directory)
        #expect(overH2C == direct)
        let intercepted = try await GRPCServer.client(
            "127.0.0.1:\(ports[1])", ["all"], in: directory, trusting: ca + "/ca.pem", name: "grpc.test")
        #expect(intercepted == direct)
        recorder.process.signalGroup(SIGINT)
        #expect(await recorder.process.wait() == 0, "\(recorder.output)")
        #expect(recorder.output.contains("grpc.test:\(server.port): TLS intercepted, recorded as https (1 connection)"))
        // Once gRPC calls were recorded for an https:// upstream, it is asked for reflection
        // (with --upstream-ca and --resolve): the recordings carry its descriptors.
        #expect(
            recorder.output.contains("recs: message names from the server's reflection (shop.v1.Recommendations)"),
            "\(recorder.output)")
        #expect(try SQLiteStore(path: store).descriptorSets().count == 1)

        let exchanges = try SQLiteStore(path: store).exchanges()
        let methods = ["Get", "Get", "List", "Chat"].map { "/shop.v1.Recommendations/\($0)" }
        #expect(exchanges.filter { $0.service == "recs" }.map(\.request.path) == methods)
        #expect(exchanges.filter { $0.service == "secure" }.map(\.request.path) == methods)
        #expect(
            exchanges.allSatisfy {
                $0.request.scheme == "https" && $0.request.host == "grpc.test" && $0.request.port == server.port
            })
        let responses = exchanges.compactMap(\.response)
        #expect(
            responses.map { $0.trailers["grpc-status"] ?? $0.headers["grpc-status"] } == [
                "0", "5", "0", "0", "0", "5", "0", "0",
            ])
        #expect(responses.map { grpcFrames($0.body.bytes).count } == [1, 0, 3, 3, 1, 0, 3, 3])
        #expect(exchanges.map { grpcFrames($0.request.body.bytes).count } == [1, 1, 1, 3, 1, 1, 1, 3])
    }

    /// A gRPC client behind a forward proxy (`grpc_proxy`, CONNECT) whose destination matches
    /// `--intercept-tls`: the tunnel's TLS is terminated, h2 chosen by ALPN, every call recorded.
    @Test func grpcThroughTheForwardProxyIsInterceptedAsHTTP2() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (server, ca) = try await tlsServerAndCA(in: directory)
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        let recorder = try DriftcheckBinary.start(
            [
                "record", "--store", store, "--listen", "127.0.0.1:0", "--resolve", "grpc.test=127.0.0.1",
                "--upstream-ca", directory.file("upstream-ca.pem"), "--intercept-tls", "grpc.test", "--ca-dir", ca,
            ], in: directory)
        let port = try await recorder.listeners(1)[0]
        let answers = try await GRPCServer.client(
            "grpc.test:\(server.port)", ["all"], in: directory, trusting: ca + "/ca.pem",
            proxy: "http://127.0.0.1:\(port)")
        #expect(answers.count == 8)
        recorder.process.signalGroup(SIGINT)
        #expect(await recorder.process.wait() == 0, "\(recorder.output)")
        #expect(recorder.output.contains("grpc.test:\(server.port): TLS intercepted, recorded as https (1 connection)"))
        let exchanges = try SQLiteStore(path: store).exchanges()
        #expect(
            exchanges.map(\.request.path) == ["Get", "Get", "List", "Chat"].map { "/shop.v1.Recommendations/\($0)" })
        #expect(exchanges.allSatisfy { $0.request.scheme == "https" && $0.request.host == "grpc.test" })
        #expect(exchanges.compactMap(\.response).map { grpcFrames($0.body.bytes).count } == [1, 0, 3, 3])
    }

    /// A recording of gRPC calls leaves as HAR (bodies in base64, trailers in `_trailers`, the
    /// descriptor sets in `log._descriptorSets`) and comes back the same: the same exchanges,
    /// the same schemas, and the same findings when compared from the HAR.
    @Test func grpcRecordingsTravelThroughHARWithTheirDescriptors() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        _ = try await recordGRPC(server, into: store, calling: ["all", "3"], in: directory)
        let contracts = directory.file("contracts")
        try FileManager.default.createDirectory(atPath: contracts, withIntermediateDirectories: true)
        let har = contracts + "/recs.har"
        #expect(try await DriftcheckBinary.run(["export", "--store", store, "--har", har], in: directory).status == 0)
        let document = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: har)))
        guard case .array(let entries)? = document["log"]?["entries"],
            case .array(let sets)? =
                document["log"]?["_descriptorSets"]
        else {
            Issue.record("no entries or descriptor sets in \(har)")
            return
        }
        #expect(entries.count == 12 && sets.count == 1)
        #expect(entries.allSatisfy { $0["request"]?["httpVersion"] == .string("HTTP/2") })
        // NOT_FOUND is a Trailers-Only answer: no body at all.
        #expect(
            entries.map { $0["response"]?["content"]?["encoding"] }.filter { $0 == .string("base64") }.count == 9)
        #expect(entries.filter { $0["response"]?["_trailers"] != nil }.count == 9)

        let imported = directory.file("imported.sqlite")
        let result = try await DriftcheckBinary.run(["import", har, "--store", imported], in: directory)
        #expect(result.status == 0, "\(result.output)")
        let before = try SQLiteStore(path: store)
        let after = try SQLiteStore(path: imported)
        #expect(try after.descriptorSets() == before.descriptorSets())
        func content(_ exchange: Exchange) -> String {
            let response = exchange.response
            return [
                exchange.service, exchange.request.method, exchange.request.scheme, exchange.request.target,
                "\(exchange.request.headers.fields)",
                exchange.request.body.bytes.base64EncodedString(), "\(response?.status ?? 0)",
                "\(response?.headers.fields ?? [])", "\(response?.trailers.fields ?? [])",
                response?.body.bytes.base64EncodedString() ?? "",
            ].joined(separator: " | ")
        }
        #expect(try after.exchanges().map(content) == before.exchanges().map(content))

        // Compared from the HAR alone: the enum drift needs the descriptors it carried.
        let mocks = try await grpcExtensionMocks(in: directory)
        let fromStore = directory.file("from-store.json")
        let fromHAR = directory.file("from-har.json")
        _ = try await DriftcheckBinary.run(
            ["compare", mocks, "--store", store, "--format", "json", "--output", fromStore], in: directory)
        _ = try await DriftcheckBinary.run(
            ["compare", mocks, "--contracts", contracts, "--format", "json", "--output", fromHAR], in: directory)
        #expect(
            try findingKeys(fromStore) == [
                "POST /shop.v1.Recommendations/Chat unmocked $",
                "POST /shop.v1.Recommendations/Get status status",
                "POST /shop.v1.Recommendations/List enum $[*].tier",
                "POST /shop.v1.Recommendations/List missing-field $[1]",
            ])
        #expect(try findingKeys(fromHAR) == findingKeys(fromStore))
    }

    /// 1,000 concurrent calls over 10 HTTP/2 connections: all answered, all stored.
    @Test func aThousandConcurrentStreamsAreAllStored() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        let result = try await recordGRPC(server, into: store, calling: ["load", "1000", "10"], in: directory)
        #expect(result == ["ok 1000"])
        let stored = try SQLiteStore(path: store)
        #expect(try stored.count() == 1000)
        let ids = try stored.exchanges().compactMap(\.response).map { $0.trailers["grpc-status"] }
        #expect(ids.allSatisfy { $0 == "0" } && ids.count == 1000)
    }
}

/// The fixture's FileDescriptorSet, as `protoc --include_imports --descriptor_set_out` writes it.
func shopDescriptorSet(in directory: TemporaryDirectory) async throws -> String {
    let path = directory.file("shop.dsc")
    let process = try ChildProcess.spawn(
        [
            "python3", "-m", "grpc_tools.protoc", "-I", Fixtures.path("grpc"), "--include_imports",
            "--descriptor_set_out=\(path)", Fixtures.path("grpc/shop.proto"),
        ], environment: ProcessInfo.processInfo.environment, outputPath: directory.file("protoc.log"))
    guard await process.wait() == 0 else { throw ClientError(description: "protoc failed") }
    return path
}

/// `directory/mocks` with the fixture's gRPC-extension mappings for `recs` and the shop
/// descriptors beside them (`recs/grpc/shop.dsc`), as the extension reads them.
func grpcExtensionMocks(in directory: TemporaryDirectory) async throws -> String {
    let mocks = directory.file("mocks")
    try FileManager.default.createDirectory(atPath: mocks + "/recs/grpc", withIntermediateDirectories: true)
    try FileManager.default.copyItem(
        atPath: Fixtures.path("grpc/wiremock/recs/mappings"), toPath: mocks + "/recs/mappings")
    try FileManager.default.copyItem(
        atPath: try await shopDescriptorSet(in: directory), toPath: mocks + "/recs/grpc/shop.dsc")
    return mocks
}

/// `endpoint kind path` of every finding in a JSON report.
func findingKeys(_ reportPath: String) throws -> [String] {
    let report = try JSONValue.parse(Data(try String(contentsOfFile: reportPath, encoding: .utf8).utf8))
    guard case .array(let findings)? = report["findings"] else { return [] }
    return findings.map { finding -> String in
        guard case .string(let endpoint)? = finding["endpoint"], case .string(let kind)? = finding["kind"],
            case .string(let path)? = finding["path"]
        else { return "?" }
        return "\(endpoint) \(kind) \(path)"
    }.sorted()
}

@Suite struct GRPCComparisonTests {
    /// The same kind of recording against stubs in WireMock's gRPC-extension format, evaluated
    /// in process with the descriptors beside them (`MOCKS/recs/grpc/shop.dsc`).
    @Test func wireMockGRPCExtensionMappingsAreEvaluatedInProcess() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        _ = try await recordGRPC(server, into: store, calling: ["all", "3"], in: directory)
        let mocks = try await grpcExtensionMocks(in: directory)
        let reportPath = directory.file("report.json")
        let result = try await DriftcheckBinary.run(
            ["compare", mocks, "--store", store, "--format", "json", "--output", reportPath], in: directory)
        #expect(
            try findingKeys(reportPath) == [
                "POST /shop.v1.Recommendations/Chat unmocked $",
                "POST /shop.v1.Recommendations/Get status status",
                "POST /shop.v1.Recommendations/List enum $[*].tier",
                "POST /shop.v1.Recommendations/List missing-field $[1]",
            ], "\(result.output)")
        let text = try String(contentsOfFile: reportPath, encoding: .utf8)
        #expect(text.contains("the real service answers OK (0), the mock UNAVAILABLE (14)"))
        // Exported as gRPC-extension stubs (with the recorded descriptors), the unary calls come
        // back without drift; streamed calls are left out, and said so.
        let exported = directory.file("exported")
        let export = try await DriftcheckBinary.run(
            ["export", "--store", store, "--wiremock", exported], in: directory)
        #expect(export.status == 0 && export.output.contains("6 gRPC calls not exported: streamed"))
        #expect(FileManager.default.fileExists(atPath: exported + "/recs/grpc/recorded.dsc"))
        let roundTrip = directory.file("round-trip.json")
        _ = try await DriftcheckBinary.run(
            ["compare", exported, "--store", store, "--format", "json", "--output", roundTrip], in: directory)
        #expect(
            try findingKeys(roundTrip) == [
                "POST /shop.v1.Recommendations/Chat unmocked $", "POST /shop.v1.Recommendations/List unmocked $",
            ])
        // A descriptor file that is not one: one line naming it, exit 2.
        try "not a descriptor".write(toFile: mocks + "/recs/grpc/shop.dsc", atomically: true, encoding: .utf8)
        let broken = try await DriftcheckBinary.run(["compare", mocks, "--store", store], in: directory)
        #expect(broken.status == 2 && broken.output.contains("recs/grpc/shop.dsc: not a FileDescriptorSet"))
    }

    /// With the service's descriptors recorded, messages compare by field name and enums by
    /// value name: the stub's PLATINUM tier is caught, and an absent proto3 scalar is its zero
    /// value rather than a missing field.
    @Test func descriptorsNameFieldsAndEnums() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let descriptors = try await shopDescriptorSet(in: directory)
        let store = directory.file("grpc.sqlite")
        _ = try await recordGRPC(
            server, into: store, calling: ["all", "3"], in: directory, options: ["--proto-descriptors", descriptors])
        let reportPath = directory.file("report.json")
        let drifted = try await DriftcheckBinary.run(
            ["compare", Fixtures.path("grpc/mocks"), "--store", store, "--format", "json", "--output", reportPath],
            in: directory)
        #expect(
            try findingKeys(reportPath) == [
                "POST /shop.v1.Recommendations/Get phantom-field $[*]['#7']",
                "POST /shop.v1.Recommendations/Get status status",
                "POST /shop.v1.Recommendations/List enum $[*].tier",
                "POST /shop.v1.Recommendations/List missing-field $[2]",
            ], "\(drifted.output)")
        #expect(try String(contentsOfFile: reportPath, encoding: .utf8).contains(#"the mock sends \"TIER_PLATINUM\""#))
        // Without a file, the real server's reflection gives the same names: the same findings,
        // and the same JSON for every recorded answer.
        let reflected = directory.file("reflected.sqlite")
        _ = try await recordGRPC(server, into: reflected, calling: ["all", "3"], in: directory)
        let reflectedReport = directory.file("reflected.json")
        _ = try await DriftcheckBinary.run(
            [
                "compare", Fixtures.path("grpc/mocks"), "--store", reflected, "--format", "json", "--output",
                reflectedReport,
            ],
            in: directory)
        #expect(try findingKeys(reflectedReport) == findingKeys(reportPath))
        let fromFile = try #require(DescriptorSets.schema(merging: SQLiteStore(path: store).descriptorSets()))
        let fromServer = try #require(DescriptorSets.schema(merging: SQLiteStore(path: reflected).descriptorSets()))
        for exchange in try SQLiteStore(path: store).exchanges() {
            let named = GRPC.view(exchange, schema: fromFile).response?.body.bytes
            #expect(named == GRPC.view(exchange, schema: fromServer).response?.body.bytes)
            #expect(named != GRPC.view(exchange).response?.body.bytes || exchange.response?.body.bytes.isEmpty == true)
        }
        // The descriptors travel with the recordings: a HAR-free pull keeps them.
        let copy = directory.file("copy.sqlite")
        let pull = try await DriftcheckBinary.run(["pull", "--from", store, "--store", copy], in: directory)
        #expect(pull.status == 0)
        #expect(try SQLiteStore(path: copy).descriptorSets() == SQLiteStore(path: store).descriptorSets())
        let bad = try await DriftcheckBinary.run(
            ["record", "--proto-descriptors", Fixtures.path("grpc/shop.proto"), "--upstream", "a=http://127.0.0.1:1"],
            in: directory)
        #expect(
            bad.status == 2
                && bad.output.contains(
                    "--proto-descriptors \(Fixtures.path("grpc/shop.proto")): not a FileDescriptorSet")
        )
    }

    /// Recorded from a real grpcio service; compared against itself (no finding) and against a
    /// drifted grpcio stub that `mock.yml` starts, with the exact findings expected.
    @Test func aDriftedGRPCStubIsCaughtAndTheRealServiceIsNot() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // No reflection and no descriptors: messages are compared by field number.
        let server = try await GRPCServer.start(in: directory, drift: ["--no-reflection"])
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        _ = try await recordGRPC(server, into: store, calling: ["all", "3"], in: directory)

        let itself = try await DriftcheckBinary.run(
            ["compare", "--mock", "recs=h2c://127.0.0.1:\(server.port)", "--store", store, "--format", "json"],
            in: directory)
        #expect(itself.status == 0, "\(itself.output)")
        #expect(itself.output.contains(#""exchanges": 12"#) && itself.output.contains(#""findings": []"#))

        let reportPath = directory.file("report.json")
        let drifted = try await DriftcheckBinary.run(
            ["compare", Fixtures.path("grpc/mocks"), "--store", store, "--format", "json", "--output", reportPath],
            in: directory)
        let text = try String(contentsOfFile: reportPath, encoding: .utf8)
        #expect(
            try findingKeys(reportPath) == [
                "POST /shop.v1.Recommendations/Get missing-field $[*]['#3']",
                "POST /shop.v1.Recommendations/Get phantom-field $[*]['#7']",
                "POST /shop.v1.Recommendations/Get status status",
                "POST /shop.v1.Recommendations/List missing-field $[2]",
            ], "\(drifted.output)")
        #expect(text.contains("the real service answers OK (0), the mock UNAVAILABLE (14)"))
        #expect(text.contains("the real service sends 3 messages on this call, the mock 2"))
    }
}

@Suite struct HostileHTTP2Tests {
    static func recorder(
        of server: GRPCServer, store: String, in directory: TemporaryDirectory, _ options: String...
    ) async throws -> (DriftcheckBinary.Running, Int) {
        let recorder = try DriftcheckBinary.start(
            [
                "record", "--store", store, "--upstream", "recs=h2c://127.0.0.1:\(server.port)", "--listen",
                "127.0.0.1:0",
            ] + options,
            in: directory)
        return (recorder, try await recorder.listeners(1)[0])
    }

    /// What the recorder did to one of fixtures/grpc/hostile_h2.py's clients.
    static func client(_ kind: String, port: Int, in directory: TemporaryDirectory) async throws -> String? {
        let log = directory.file("hostile-\(kind).log")
        let process = try ChildProcess.spawn(
            ["python3", Fixtures.path("grpc/hostile_h2.py"), String(port), kind],
            environment: ProcessInfo.processInfo.environment, outputPath: log)
        _ = await process.wait()
        return (try? String(contentsOfFile: log, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Each attack (fixtures/grpc/hostile_h2.py) is refused as HTTP/2 says it should be, the
    /// recorder goes on serving real calls, and everything stored reads back.
    @Test func hostileClientsAreRefusedAndTheProxyKeepsServing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        let (recorder, port) = try await Self.recorder(of: server, store: store, in: directory)
        // What each attack gets: a GOAWAY with the RFC 9113 error code and then the end of the
        // connection (§5.4.1), or an answer upstream gave.
        let expected: [(String, [String])] = [
            ("malformed", ["goaway 6 closed"]),  // FRAME_SIZE_ERROR
            ("hpack-bomb", ["goaway 6 closed", "goaway 1 closed", "rst 11", "goaway 11 closed"]),
            ("rst-flood", ["goaway 11 closed"]),  // ENHANCE_YOUR_CALM
            ("huge-claim", ["answered"]),  // forwarded; the stored body is not read as messages
            // The client overran its window; or, when the proxy had not read that far yet (a
            // loaded machine), the upstream's answer to what it got came first.
            ("endless", ["goaway 1 closed", "goaway 3 closed", "rst 3", "answered"]),
        ]
        for (attack, outcomes) in expected {
            let result = try await Self.client(attack, port: port, in: directory)
            #expect(outcomes.contains(result ?? ""), "\(attack): \(result ?? "nothing")")
            let call = try await GRPCServer.client("127.0.0.1:\(port)", ["unary"], in: directory)
            #expect(call.count == 1 && call[0].contains("SKU-c0-1"), "after \(attack)")
        }
        recorder.process.signalGroup(SIGINT)
        #expect(await recorder.process.wait() == 0, "\(recorder.output)")
        let exchanges = try SQLiteStore(path: store).exchanges()
        let answered = exchanges.compactMap(\.response)
        // The five real calls and the huge claim at least (a flooded stream may have been answered
        // before its reset); every answer carries a gRPC status.
        #expect(answered.count >= 6)
        #expect(answered.filter { GRPC.status(of: $0) == 0 }.count >= 5)
        #expect(answered.allSatisfy { GRPC.status(of: $0) != nil })
        #expect(exchanges.allSatisfy { $0.request.path == "/shop.v1.Recommendations/Get" })
    }

    /// A stream on which neither side has said anything for the idle timeout is reset and stored
    /// as the client's failure; a connection with no stream is ended with a graceful GOAWAY. Before,
    /// both stayed as long as the client liked.
    @Test func aSilentStreamAndAnIdleConnectionAreEnded() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let store = directory.file("grpc.sqlite")
        let (recorder, port) = try await Self.recorder(of: server, store: store, in: directory, "--idle-timeout", "1")
        for (kind, outcome) in [("pause", "rst 8"), ("idle", "goaway 0 closed")] {  // 8: CANCEL
            let result = try await Self.client(kind, port: port, in: directory)
            #expect(result == outcome, "\(kind)")
        }
        // A call that answers keeps its stream: the idle limit is about silence, not length.
        let call = try await GRPCServer.client("127.0.0.1:\(port)", ["unary"], in: directory)
        #expect(call.count == 1 && call[0].contains("SKU-c0-1"))
        recorder.process.signalGroup(SIGINT)
        #expect(await recorder.process.wait() == 0, "\(recorder.output)")
        let failures = try SQLiteStore(path: store).exchanges().compactMap { exchange -> ExchangeFailure? in
            if case .failure(let failure) = exchange.result { return failure }
            return nil
        }
        #expect(failures == [ExchangeFailure(.clientClosed, "client sent none of the rest of its request for 1000 ms")])
    }
}
