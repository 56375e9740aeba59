import DriftcheckCore
import DriftcheckDemo
import DriftcheckProxy
import DriftcheckTestSupport
import Foundation
import NIOCore
import Testing

@Suite struct ReverseProxyTests {
    @Test func forwardsAndRecordsAnExchange() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }

        let response = try await harness.send(
            .json("POST", "/echo/orders?page=2", #"{"sku":"A-1","quantity":2}"#, headers: [("X-Trace", "t-1")]))
        #expect(response.status == 200)
        let echoed = try JSONValue.parse(response.body)
        #expect(echoed["method"] == .string("POST"))
        #expect(echoed["uri"] == .string("/echo/orders?page=2"))
        #expect(echoed["body"] == .string(#"{"sku":"A-1","quantity":2}"#))
        guard case .array(let headers)? = echoed["headers"] else {
            Issue.record("no headers")
            return
        }
        // The upstream's own Host, first, as RFC 9112 asks; the client's is not passed on.
        #expect(headers.first == .array([.string("Host"), .string("127.0.0.1:\(upstream.port)")]))
        let names = headers.compactMap { field -> String? in
            guard case .array(let pair) = field, case .string(let name)? = pair.first else { return nil }
            return name.lowercased()
        }
        #expect(names.filter { $0 == "host" }.count == 1)

        let stored = try await harness.finish()
        #expect(stored.count == 1)
        let exchange = try #require(stored.first)
        #expect(exchange.service == "orders")
        #expect(exchange.request.method == "POST")
        #expect(exchange.request.path == "/echo/orders")
        #expect(exchange.request.query == "page=2")
        #expect(exchange.request.host == "127.0.0.1")
        #expect(exchange.request.port == upstream.port)
        #expect(exchange.request.headers["x-trace"] == "t-1")
        #expect(String(decoding: exchange.request.body.bytes, as: UTF8.self) == #"{"sku":"A-1","quantity":2}"#)
        #expect(exchange.response?.status == 200)
        #expect(exchange.response?.body.bytes == response.body)
        #expect(exchange.duration > 0)
        await upstream.stop()
    }

    @Test func stripsHopByHopHeadersAndTheOnesConnectionNames() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }
        let response = try await harness.raw(
            "GET /echo/h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop-Only\r\nX-Hop-Only: 1\r\n"
                + "Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n"
                + "X-End-To-End: 2\r\nConnection: close\r\n\r\n")
        let body = try #require(response.range(of: "\r\n\r\n").map { String(response[$0.upperBound...]) })
        guard case .array(let headers)? = try JSONValue.parse(body)["headers"] else {
            Issue.record("no headers in \(response)")
            return
        }
        let names = Set(
            headers.compactMap { header -> String? in
                guard case .array(let pair) = header, case .string(let name)? = pair.first else { return nil }
                return name.lowercased()
            })
        #expect(names.contains("x-end-to-end"))
        for hop in ["connection", "x-hop-only", "keep-alive", "te", "upgrade", "proxy-connection"] {
            #expect(!names.contains(hop), "\(hop) was forwarded")
        }
        _ = try await harness.finish()
        await upstream.stop()
    }

    @Test func keepsConnectionsAliveOnBothSides() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }
        let requests = (1...20).map { ClientRequest("GET", "/orders/\($0)") }
        let responses = try await LoopbackHTTPClient.send(requests, port: harness.port, group: testGroup)
        #expect(responses.map(\.status) == Array(repeating: 200, count: 20))
        #expect(try JSONValue.parse(responses[19].body)["id"] == .number("20"))
        let stored = try await harness.finish()
        #expect(stored.map(\.request.path) == (1...20).map { "/orders/\($0)" })
        await upstream.stop()
    }

    @Test func slowsClientsDownInsteadOfLosingExchangesWhenTheStoreFallsBehind() async throws {
        let upstream = try await TestUpstream.start()
        // 20 connections × 256 KiB answers against a 512 KiB soft bound: the queue crosses it
        // constantly, and the 8 MiB hard bound is only safe if connections really wait.
        let harness = try await ProxyHarness.reverse(to: upstream, storeBytes: (soft: 512 << 10, hard: 8 << 20))
        defer { harness.remove() }
        let connections = 20
        let perConnection = 15
        let sizes = try await harness.sendConcurrently(connections: connections) { _ in
            (0..<perConnection).map { _ in ClientRequest("GET", "/bytes/\(256 << 10)") }
        }.map(\.bodySize)
        #expect(sizes == Array(repeating: 256 << 10, count: connections * perConnection))
        let stored = try await harness.finish()
        let statistics = harness.writer.currentStatistics
        #expect(statistics.dropped == 0)
        #expect(stored.count == connections * perConnection)
        #expect(harness.waits.withLockedValue { $0 } > 0)
        await upstream.stop()
    }

    @Test func recordsHundredsOfConcurrentRequests() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }
        let connections = 60
        let perConnection = 10
        let statuses = try await harness.sendConcurrently(connections: connections) { connection in
            (0..<perConnection).map { ClientRequest("GET", "/orders/\(connection * perConnection + $0 + 1)") }
        }.map(\.status)
        #expect(statuses.count == connections * perConnection)
        let stored = try await harness.finish()
        let failures = stored.compactMap { exchange -> String? in
            guard case .failure(let failure) = exchange.result else { return nil }
            return "\(exchange.request.path) \(failure.kind): \(failure.detail)"
        }
        #expect(
            statuses.allSatisfy { $0 == 200 }, "\(Dictionary(grouping: statuses) { $0 }.mapValues(\.count)) \(failures)"
        )
        #expect(stored.count == connections * perConnection)
        #expect(Set(stored.map(\.request.path)).count == connections * perConnection)
        await upstream.stop()
    }

    @Test func streamsA200MBResponseAndStoresItTruncated() async throws {
        let upstream = try await TestUpstream.start()
        var configuration = ProxyConfiguration()
        configuration.maxBody = 64 * 1024
        let harness = try await ProxyHarness.reverse(to: upstream, configuration: configuration)
        defer { harness.remove() }
        let size = 200 * 1024 * 1024
        let response = try await harness.send(ClientRequest("GET", "/bytes/\(size)"), timeout: .seconds(300))
        #expect(response.status == 200)
        #expect(response.bodySize == size)
        let stored = try await harness.finish()
        let body = try #require(stored.first?.response?.body)
        #expect(body.size == size)
        #expect(body.bytes.count == 64 * 1024)
        #expect(body.isTruncated)
        await upstream.stop()
    }

    @Test func streamsA200MBUploadAndStoresItTruncated() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }
        let size = 200 * 1024 * 1024
        let response = try await harness.send(
            ClientRequest("PUT", "/count/upload", body: .generated(count: size)), timeout: .seconds(300))
        #expect(response.status == 200)
        #expect(try JSONValue.parse(response.body)["bodySize"] == .number(String(size)))
        let stored = try await harness.finish()
        let body = try #require(stored.first?.request.body)
        #expect(body.size == size)
        #expect(body.bytes.count == 1 << 20)
        await upstream.stop()
    }

    @Test func answersExpectContinueBeforeTheBody() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }
        let connection = try await RawConnection.open(port: harness.port, group: testGroup)
        try await connection.send(
            "POST /echo/c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        let interim = try await connection.read(until: "\r\n\r\n")
        #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
        try await connection.send("hello")
        let text = try await connection.readToEnd()
        #expect(text.contains("HTTP/1.1 200 OK"))
        #expect(text.contains(#""body":"hello""#))
        #expect(!text.contains("expect"))
        let stored = try await harness.finish()
        #expect(stored.first?.response?.status == 200)
        await upstream.stop()
    }

    @Test func answersPipelinedRequestsInOrder() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw(
            "GET /orders/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /orders/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /orders/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        let ids = text.components(separatedBy: "\"id\":").dropFirst().map { $0.prefix { $0.isNumber } }
        #expect(ids.filter { ["1", "2", "3"].contains($0) } == ["1", "2", "3"])
        let stored = try await harness.finish()
        #expect(stored.map(\.request.path) == ["/orders/1", "/orders/2", "/orders/3"])
        await upstream.stop()
    }

    @Test func prefixesTheUpstreamBasePath() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.start(
            .reverse(service: "orders", upstream: UpstreamURL.parse(upstream.baseURL + "/echo")!))
        defer { harness.remove() }
        let response = try await harness.send(ClientRequest("GET", "/v1/things?x=1"))
        #expect(try JSONValue.parse(response.body)["uri"] == .string("/echo/v1/things?x=1"))
        let stored = try await harness.finish()
        #expect(stored.first?.request.path == "/v1/things")
        await upstream.stop()
    }
}
