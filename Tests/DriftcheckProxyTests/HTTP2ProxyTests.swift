import DriftcheckCore
import DriftcheckTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import DriftcheckProxy

/// Counts the flushes that reach the socket side.
final class FlushCounter: ChannelOutboundHandler {
    typealias OutboundIn = NIOAny
    var flushes = 0

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }
}

@Suite struct FlushConsolidationTests {
    /// Many flushes in one pass of the event loop reach the socket as one, after the pass; the
    /// next pass gets its own.
    @Test func theFlushesOfOneLoopPassBecomeOne() throws {
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([counter, FlushConsolidation()])
        for text in ["a", "b", "c"] {
            channel.write(ByteBuffer(string: text), promise: nil)
            channel.flush()
        }
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(counter.flushes == 0)
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "a"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "b"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "c"))
        channel.writeAndFlush(ByteBuffer(string: "d"), promise: nil)
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 2)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "d"))
        _ = try channel.finish()
    }

    /// A flush still waiting for the end of the pass goes out before a close in the same pass:
    /// a GOAWAY written and flushed just before its connection closes is not lost.
    @Test func aWaitingFlushGoesOutBeforeTheClose() throws {
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([counter, FlushConsolidation()])
        channel.write(ByteBuffer(string: "goaway"), promise: nil)
        channel.flush()
        channel.close(promise: nil)
        #expect(counter.flushes == 1)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "goaway"))
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
    }
}

@Suite struct HTTP2BackPressureTests {
    /// 3,000 gRPC calls on 3 connections through a writer with a 4 KiB soft bound (streams may be
    /// held for room whenever it is crossed) and a 64 KiB hard bound: every call answered and
    /// stored, none dropped, none left waiting. That a stream's request is held at all is
    /// `anHTTP2StreamsRequestWaitsForRoomBeforeItGoesUpstream`'s to show, on the loop's clock.
    @Test func streamsWaitForTheStoreInsteadOfBeingLost() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let harness = try await ProxyHarness.start(
            .reverse(service: "recs", upstream: UpstreamURL(scheme: "h2c", host: "127.0.0.1", port: server.port)),
            storeBytes: (soft: 4 << 10, hard: 64 << 10))
        defer { harness.remove() }
        let result = try await GRPCServer.client("127.0.0.1:\(harness.port)", ["load", "3000", "3"], in: directory)
        #expect(result == ["ok 3000"])
        let stored = try await harness.finish()
        #expect(harness.writer.currentStatistics.dropped == 0)
        #expect(stored.count == 3000)
    }
}
