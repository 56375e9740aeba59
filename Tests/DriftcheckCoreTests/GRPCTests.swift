import Foundation
import Testing

@testable import DriftcheckCore

@Suite struct GRPCTests {
    /// `{1: "SKU-1", 3: 2000, 5: ["new", "t1"], 6: 1.5, 8: {1: "x"}}` written by hand.
    static let message: [UInt8] =
        [0x0A, 5] + Array("SKU-1".utf8) + [0x18, 0xD0, 0x0F] + [0x2A, 3] + Array("new".utf8) + [0x2A, 2]
        + Array("t1".utf8) + [0x31] + withUnsafeBytes(of: (1.5).bitPattern.littleEndian, Array.init)
        + [0x42, 3, 0x0A, 1, UInt8(ascii: "x")]

    static func framed(_ messages: [[UInt8]]) -> Data {
        Data(messages.flatMap { [0, 0, 0, 0, UInt8($0.count)] + $0 })
    }

    @Test func decodesTheWireFormatWithoutASchema() throws {
        let json = try #require(ProtobufWire.json(Data(Self.message)))
        #expect(
            json.serialized()
                == ##"{"#1":"SKU-1","#3":2000,"#5":["new","t1"],"#6":1.5,"#8":{"#1":"x"}}"##)
    }

    @Test func aGRPCAnswerIsViewedAsItsStatusAndItsMessages() {
        let response = RecordedResponse(
            status: 200, headers: HeaderFields([("content-type", "application/grpc")]),
            body: CapturedBody(bytes: Self.framed([Self.message, [0x18, 1]])),
            trailers: HeaderFields([("grpc-status", "0")]))
        let view = GRPC.view(response)
        #expect(view.status == 200 && GRPC.isView(view.headers))
        #expect(String(decoding: view.body.bytes, as: UTF8.self).hasSuffix(##",{"#3":1}]"##))
        let failed = RecordedResponse(
            status: 200,
            headers: HeaderFields([("content-type", "application/grpc"), ("grpc-status", "14"), ("grpc-message", "x")]))
        #expect(GRPC.view(failed).status == 503)
        #expect(GRPC.describe(GRPC.view(failed).headers) == "UNAVAILABLE (14)")
        // Not gRPC: untouched.
        let json = RecordedResponse(status: 200, headers: HeaderFields([("content-type", "application/json")]))
        #expect(GRPC.view(json) == json)
    }

    @Test(arguments: [
        [0x00, 0x00, 0x00, 0x00, 0x09, 0x0A] as [UInt8],  // claims 9 bytes, has 1
        [0x02, 0x00, 0x00, 0x00, 0x00],  // no such flag
        [0x00, 0xFF, 0xFF, 0xFF, 0xFF],  // claims 4 GiB
        [0x00, 0x00],
    ])
    func brokenFramingIsNotComparedAsMessages(body: [UInt8]) {
        #expect(GRPC.messages(Data(body)) == nil)
        let view = GRPC.view(
            RecordedResponse(
                status: 200, headers: HeaderFields([("content-type", "application/grpc")]),
                body: CapturedBody(bytes: Data(body))))
        #expect(view.body.isTruncated)
    }

    @Test func hostileMessagesDecodeToSomethingOrNothingWithoutTrapping() {
        // Nested a thousand deep: decoded to the limit, then left as bytes.
        var nested: [UInt8] = [0x08, 1]
        for _ in 0..<1000 { nested = [0x0A] + varint(nested.count) + nested }
        #expect(ProtobufWire.json(Data(nested)) != nil)
        // A length past the end, an unterminated varint, a group, field number 0.
        for bytes: [UInt8] in [[0x0A, 0x7F, 1], [0x08, 0xFF, 0xFF], [0x0B], [0x00, 1]] {
            #expect(ProtobufWire.json(Data(bytes)) == nil)
        }
    }

    func varint(_ value: Int) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            out.append(UInt8(value & 0x7F) | (value > 0x7F ? 0x80 : 0))
            value >>= 7
        } while value > 0
        return out
    }
}
