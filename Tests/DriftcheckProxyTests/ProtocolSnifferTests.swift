import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import DriftcheckTestSupport
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import DriftcheckProxy

#if canImport(Glibc)
    import Glibc
#endif

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

    /// A real TLS stack on both ends (Python's ssl, OpenSSL): a client speaking TLS to a reverse
    /// listener reaches the TLS upstream through the tunnel, handshake and all.
    @Test func aRealTLSClientReachesItsUpstreamThroughTheListener() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = Fixtures.path("tls/tls_echo.py")
        let server = try ChildProcess.spawn(
            ["python3", script, "server", directory.path], environment: ProcessInfo.processInfo.environment,
            outputPath: directory.file("server.log"))
        defer { server.signalGroup(SIGKILL) }
        var upstreamPort: Int?
        _ = await eventually(timeout: 60) {
            let log = (try? String(contentsOfFile: directory.file("server.log"), encoding: .utf8)) ?? ""
            upstreamPort = log.split(separator: "\n").first { $0.hasPrefix("port ") }.flatMap { Int($0.dropFirst(5)) }
            return upstreamPort != nil
        }
        let port = try #require(upstreamPort, "the TLS server did not start")
        let harness = try await ProxyHarness.start(
            .reverse(service: "payments", upstream: UpstreamURL(scheme: "http", host: "127.0.0.1", port: port)))
        defer { harness.remove() }
        let client = try ChildProcess.spawn(
            ["python3", script, "client", String(harness.port)], environment: ProcessInfo.processInfo.environment,
            outputPath: directory.file("client.log"))
        let status = await client.wait()
        let log = (try? String(contentsOfFile: directory.file("client.log"), encoding: .utf8)) ?? ""
        #expect(status == 0, "\(log)")
        #expect(harness.proxy.coverage.tunnelled == ["127.0.0.1:\(port)": 1])
        #expect(try await harness.finish().isEmpty)
    }
}
