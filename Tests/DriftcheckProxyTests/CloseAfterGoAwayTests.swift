import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import DriftcheckProxy

/// One HTTP/2 frame's bytes: header and payload.
func h2Frame(type: UInt8, stream: UInt32 = 0, payload: [UInt8] = []) -> [UInt8] {
    let length = payload.count
    return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, 0]
        + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
}

func goAwayFrame(code: UInt32) -> [UInt8] {
    h2Frame(
        type: 7,
        payload: withUnsafeBytes(of: UInt32(5).bigEndian, Array.init) + withUnsafeBytes(of: code.bigEndian, Array.init))
}

@Suite struct FrameReaderTests {
    func read(_ pieces: [[UInt8]]) -> [Bool] {
        var reader = FrameReader()
        return pieces.map { reader.read(ByteBuffer(bytes: $0).readableBytesView) }
    }

    @Test func aGoAwayWithAnErrorIsSeenWhereverItsBytesAreCut() {
        let stream =
            h2Frame(type: 4, payload: [0, 3, 0, 0, 0, 100]) + goAwayFrame(code: 6)
            + h2Frame(type: 6, payload: Array(repeating: 0, count: 8))
        // Whole, byte by byte, and cut at every place.
        #expect(read([stream]) == [true])
        let byByte = read(stream.map { [$0] })
        #expect(byByte.filter { $0 }.count == 1)
        // The last byte of the error code completes it: settings (15 bytes) + 9 + 8.
        #expect(byByte.firstIndex(of: true) == 15 + 17 - 1)
        for cut in 1..<stream.count {
            #expect(read([Array(stream[..<cut]), Array(stream[cut...])]).filter { $0 }.count == 1, "cut at \(cut)")
        }
    }

    @Test func aClientsPrefaceIsPassedOver() {
        var reader = FrameReader(passing: CloseAfterGoAway.clientPreface)
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let first = reader.read(ByteBuffer(bytes: preface + h2Frame(type: 4)).readableBytesView)
        let second = reader.read(ByteBuffer(bytes: goAwayFrame(code: 1)).readableBytesView)
        #expect(!first && second)
    }

    @Test func aGracefulGoAwayAndLookalikeBytesInsideAFrameAreNot() {
        #expect(read([goAwayFrame(code: 0)]) == [false])
        // A DATA frame carrying a GOAWAY with an error as its payload, then a real PING.
        let data = h2Frame(type: 0, stream: 1, payload: goAwayFrame(code: 2))
        #expect(read([data, h2Frame(type: 6, payload: Array(repeating: 0, count: 8))]) == [false, false])
        // The same, its header and payload written apart (as NIOHTTP2 writes DATA).
        #expect(read([Array(data[..<9]), Array(data[9...])]) == [false, false])
    }
}

@Suite struct CloseAfterGoAwayTests {
    @Test func theConnectionClosesOnceAGoAwayWithAnErrorIsWritten() throws {
        let channel = EmbeddedChannel(handler: CloseAfterGoAway())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeAndFlush(ByteBuffer(bytes: h2Frame(type: 4))).wait()
        #expect(channel.isActive)
        let written = channel.writeAndFlush(ByteBuffer(bytes: goAwayFrame(code: 1)))
        channel.embeddedEventLoop.run()
        try written.wait()
        #expect(!channel.isActive)
        // The GOAWAY went out before the close.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: h2Frame(type: 4)))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(bytes: goAwayFrame(code: 1)))
    }

    @Test func aGracefulGoAwayLeavesTheConnectionToItsStreams() throws {
        let channel = EmbeddedChannel(handler: CloseAfterGoAway())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeAndFlush(ByteBuffer(bytes: goAwayFrame(code: 0))).wait()
        channel.embeddedEventLoop.run()
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    /// With NIOHTTP2's server handler above it: a connection error (a SETTINGS frame whose length
    /// is not a multiple of 6) gets its GOAWAY, and then the connection ends; a stream error
    /// (a stream opened with an invalid header block) gets its RST_STREAM and the connection stays.
    @Test func aConnectionErrorEndsTheConnectionAndAStreamErrorDoesNot() throws {
        func serve() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandlers([
                CloseAfterGoAway(),
                NIOHTTP2Handler(mode: .server, eventLoop: channel.eventLoop) { $0.eventLoop.makeSucceededVoidFuture() },
            ])
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            try channel.writeInbound(
                ByteBuffer(bytes: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + h2Frame(type: 4)))
            return channel
        }
        let bad = try serve()
        #expect(throws: (any Error).self) {
            try bad.writeInbound(ByteBuffer(bytes: h2Frame(type: 4, payload: [0, 1, 0])))
        }
        bad.embeddedEventLoop.run()
        #expect(!bad.isActive)

        let rude = try serve()
        // HEADERS on stream 1 with END_HEADERS and END_STREAM, a request with no :method (a
        // malformed request: a stream error, RFC 9113 §8.1.1).
        var headers = h2Frame(type: 1, stream: 1, payload: [0x00, 5] + Array(":path".utf8) + [1] + Array("/".utf8))
        headers[4] = 0x5
        _ = try? rude.writeInbound(ByteBuffer(bytes: headers))
        rude.embeddedEventLoop.run()
        var written: [UInt8] = []
        while let out = try rude.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = out { written += buffer.readableBytesView }
        }
        var types: [UInt8] = []
        var rest = written[...]
        while rest.count >= 9 {
            let length =
                Int(rest[rest.startIndex]) << 16 | Int(rest[rest.startIndex + 1]) << 8 | Int(rest[rest.startIndex + 2])
            types.append(rest[rest.startIndex + 3])
            rest = rest.dropFirst(9 + length)
        }
        #expect(types.contains(3), "frames written: \(types)")
        #expect(!types.contains(7), "frames written: \(types)")
        #expect(rude.isActive)
        _ = try? rude.finish()
    }

    /// As the upstream pool sets it up: an upstream whose SETTINGS frame is malformed gets a
    /// GOAWAY and the connection ends.
    @Test func anUpstreamsConnectionErrorEndsItsConnection() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            CloseAfterGoAway(passing: CloseAfterGoAway.clientPreface),
            NIOHTTP2Handler(mode: .client, eventLoop: channel.eventLoop) { $0.eventLoop.makeSucceededVoidFuture() },
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        #expect(channel.isActive)
        #expect(throws: (any Error).self) {
            try channel.writeInbound(ByteBuffer(bytes: h2Frame(type: 4, payload: [0, 1, 0])))
        }
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }
}

@Suite struct IdleHTTP2ConnectionTests {
    @Test func aConnectionWithoutStreamsEndsWithAGracefulGoAway() throws {
        let idle = IdleHTTP2Connection()
        let channel = EmbeddedChannel(handler: idle)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        idle.streamCreated(HTTP2StreamID(3), channel: channel)
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        channel.embeddedEventLoop.run()
        // A stream is open: the connection is not idle, whatever the client has not sent.
        #expect(channel.isActive)
        #expect(try channel.readOutbound(as: HTTP2Frame.self) == nil)

        idle.streamClosed(HTTP2StreamID(3), channel: channel)
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        channel.embeddedEventLoop.run()
        let frame = try #require(try channel.readOutbound(as: HTTP2Frame.self))
        guard case .goAway(let last, let code, _) = frame.payload else {
            Issue.record("wrote \(frame.payload)")
            return
        }
        #expect(last == HTTP2StreamID(3) && code == .noError && frame.streamID == .rootStream)
        #expect(!channel.isActive)
    }
}
