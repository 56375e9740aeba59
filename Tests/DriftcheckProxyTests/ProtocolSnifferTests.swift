import DriftcheckCore
import DriftcheckDemo
import DriftcheckTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import DriftcheckProxy

/// Writes back whatever it reads: the upstream end of a tunnel.
private final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

@Suite struct ProtocolSnifferTests {
    @Test(arguments: [
        ([UInt8](), ProtocolSniffer.Verdict.undecided), ([0x16, 0x03, 0x01], .tls),
        (Array("GET / HTTP/1.1".utf8), .http1),
        (Array("PRI * HTTP".utf8), .undecided), (Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8), .http2),
        (Array("POST /x".utf8), .http1), (Array("P".utf8), .undecided),
    ])
    func firstBytesTellTheProtocol(bytes: [UInt8], verdict: ProtocolSniffer.Verdict) {
        #expect(ProtocolSniffer.verdict(bytes) == verdict)
    }

    /// A TLS or HTTP/2 client behind a reverse listener is relayed to the upstream untouched,
    /// counted in the coverage and not recorded; HTTP/1.1 on the same listener is recorded.
    @Test func tlsAndHTTP2ClientsAreTunnelledAndCountedNotRecorded() async throws {
        let echo = try await ServerBootstrap(group: testGroup)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { echo.close(promise: nil) }
        let echoPort = try #require(echo.localAddress?.port)
        let harness = try await ProxyHarness.start(
            .reverse(service: "recs", upstream: UpstreamURL(scheme: "http", host: "127.0.0.1", port: echoPort)))
        defer { harness.remove() }
        for greeting in ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nframes-follow", "\u{16}\u{03}\u{01}client-hello"] {
            let connection = try await RawConnection.open(port: harness.port, group: testGroup)
            try await connection.send(greeting)
            let back = try await connection.read(until: greeting.suffix(6).description, timeout: 10)
            #expect(back == greeting)
        }
        #expect(harness.proxy.coverage.tunnelled == ["127.0.0.1:\(echoPort)": 2])
        #expect(try await harness.finish().isEmpty)
    }
}
