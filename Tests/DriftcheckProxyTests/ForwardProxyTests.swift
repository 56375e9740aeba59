import DriftcheckCore
import DriftcheckDemo
import DriftcheckProxy
import DriftcheckTestSupport
import Foundation
import NIOCore
import Testing

@Suite struct ForwardProxyTests {
    @Test func forwardsAbsoluteFormRequestsNamedAfterTheTarget() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.start(.forward)
        defer { harness.remove() }
        let target = "http://127.0.0.1:\(upstream.port)/orders/7?expand=items"
        let response = try await harness.send(
            ClientRequest("GET", target, headers: [("Proxy-Authorization", "Basic c2VjcmV0")]))
        #expect(response.status == 200)
        #expect(try JSONValue.parse(response.body)["id"] == .number("7"))
        let stored = try await harness.finish()
        let exchange = try #require(stored.first)
        #expect(exchange.service == "127.0.0.1-\(upstream.port)")
        #expect(exchange.request.path == "/orders/7")
        #expect(exchange.request.query == "expand=items")
        #expect(EndpointCatalog.heuristic.endpoint(of: exchange.request) == "GET /orders/{id}")
        await upstream.stop()
    }

    @Test func doesNotPassProxyCredentialsUpstream() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.start(.forward)
        defer { harness.remove() }
        let response = try await harness.send(
            ClientRequest(
                "GET", "http://127.0.0.1:\(upstream.port)/echo",
                headers: [("Proxy-Authorization", "Basic c2VjcmV0"), ("Proxy-Connection", "keep-alive")]))
        #expect(!response.text.lowercased().contains("proxy-"))
        _ = try await harness.finish()
        await upstream.stop()
    }

    @Test func rejectsOriginFormRequests() async throws {
        let harness = try await ProxyHarness.start(.forward)
        defer { harness.remove() }
        let text = try await harness.raw("GET /orders HTTP/1.1\r\nHost: somewhere\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request"))
        #expect(text.contains("absolute-form"))
        #expect(try await harness.finish().isEmpty)
    }

    @Test func tunnelsConnectWithoutRecording() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.start(.forward)
        defer { harness.remove() }
        let connection = try await RawConnection.open(port: harness.port, group: testGroup)
        try await connection.send(
            "CONNECT 127.0.0.1:\(upstream.port) HTTP/1.1\r\nHost: 127.0.0.1:\(upstream.port)\r\n\r\n")
        let established = try await connection.read(until: "\r\n\r\n")
        #expect(established.hasPrefix("HTTP/1.1 200"))
        // Anything may flow through the tunnel; here it is plain HTTP to show bytes pass both ways.
        try await connection.send("GET /orders/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        // Read to the answer's id: the origin need not close the tunnel.
        let text = try await connection.read(until: #""id":5"#)
        #expect(text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(try await harness.finish().isEmpty)
        await upstream.stop()
    }

    @Test func refusesConnectOnAReverseListener() async throws {
        let upstream = try await TestUpstream.start()
        let harness = try await ProxyHarness.reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw("CONNECT 127.0.0.1:\(upstream.port) HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 405"))
        _ = try await harness.finish()
        await upstream.stop()
    }
}
