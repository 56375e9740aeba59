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

@Suite struct ProtoSchemaTests {
    /// message M { int64 big = 1; repeated int32 packed = 2; sint32 signed = 3; map<string,int32> counts = 4;
    ///   Tier tier = 5; bytes raw = 6; string name = 7; bool on = 8; double ratio = 9; M child = 10; }
    static var schema: ProtoSchema {
        var schema = ProtoSchema()
        func field(
            _ number: Int, _ name: String, _ type: ProtoSchema.FieldType, _ typeName: String? = nil,
            repeated: Bool = false
        )
            -> ProtoSchema.Field
        {
            ProtoSchema.Field(
                number: number, name: name, type: type, typeName: typeName, repeated: repeated,
                implicitPresence: !repeated && type != .message, protoName: name == "on" ? "is_on" : name)
        }
        schema.messages[".t.M"] = ProtoSchema.Message(
            fields: [
                field(1, "big", .int64), field(2, "packed", .int32, repeated: true), field(3, "signed", .sint32),
                field(4, "counts", .message, ".t.M.CountsEntry", repeated: true),
                field(5, "tier", .enumeration, ".t.Tier"),
                field(6, "raw", .bytes), field(7, "name", .string), field(8, "on", .bool), field(9, "ratio", .double),
                field(10, "child", .message, ".t.M"),
            ], isMapEntry: false)
        schema.messages[".t.M.CountsEntry"] = ProtoSchema.Message(
            fields: [field(1, "key", .string), field(2, "value", .int32)], isMapEntry: true)
        schema.enums[".t.Tier"] = [0: "TIER_UNSPECIFIED", 2: "TIER_GOLD"]
        schema.methods["/t.S/Get"] = (".t.M", ".t.M")
        return schema
    }

    @Test func decodesByProtobufsJSONMapping() throws {
        let bytes: [UInt8] =
            [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]  // big = -1
            + [0x12, 0x03, 0x01, 0x02, 0x03]  // packed = [1, 2, 3]
            + [0x18, 0x03]  // signed = -2 (zigzag)
            + [0x22, 0x07, 0x0A, 0x01, 0x61, 0x10, 0x05, 0x10, 0x06]  // counts["a"] = 6 (the last value wins)
            + [0x28, 0x02]  // tier = GOLD
            + [0x32, 0x02, 0x00, 0xFF]  // raw
            + [0x52, 0x02, 0x28, 0x07]  // child { tier = 7, unknown to the enum }
            + [0x78, 0x01]  // field 15, unknown to the schema
        let json = try #require(Self.schema.json(Data(bytes), type: ".t.M"))
        #expect(
            json.serialized()
                == ##"{"big":"-1","packed":[1,2,3],"signed":-2,"counts":{"a":6},"tier":"TIER_GOLD","raw":"AP8=","name":"","on":false,"ratio":0,"child":{"big":"0","packed":[],"signed":0,"counts":{},"tier":7,"raw":"","name":"","on":false,"ratio":0},"#15":1}"##
        )
    }

    @Test func aGRPCAnswerIsDecodedByItsMethodsOutputType() {
        let response = RecordedResponse(
            status: 200, headers: HeaderFields([("content-type", "application/grpc")]),
            body: CapturedBody(bytes: Data([0, 0, 0, 0, 2, 0x28, 0x02])), trailers: HeaderFields([("grpc-status", "0")])
        )
        let request = RecordedRequest(method: "POST", host: "t", port: 80, path: "/t.S/Get")
        let view = GRPC.view(response, answerTo: request, schema: Self.schema)
        #expect(String(decoding: view.body.bytes, as: UTF8.self).contains(#""tier":"TIER_GOLD""#))
        let unknownMethod = RecordedRequest(method: "POST", host: "t", port: 80, path: "/t.S/Other")
        let schemaless = GRPC.view(response, answerTo: unknownMethod, schema: Self.schema)
        #expect(String(decoding: schemaless.body.bytes, as: UTF8.self) == ##"[{"#5":2}]"##)
    }

    /// What protobuf-java's JSON parser accepts (WireMock's gRPC extension turns a stub's JSON
    /// answer into a message with it): both names, numbers as strings and strings as numbers,
    /// enums by name or number, nulls as unset. Decoded again, the message is what a client
    /// receives, with zero values for what the JSON left out.
    @Test func jsonBecomesTheMessageAClientReceives() throws {
        let schema = Self.schema
        let json = try JSONValue.parse(
            Data(
                ##"{"big": 12, "packed": ["1", 2.0, 3], "signed": "-2", "counts": {"a": 6}, "tier": 2, "raw": "AP8", "is_on": true, "ratio": "NaN", "child": {"tier": "TIER_GOLD", "name": null}}"##
                    .utf8))
        let bytes = try schema.message(fromJSON: json, type: ".t.M")
        #expect(
            schema.json(bytes, type: ".t.M")?.serialized()
                == ##"{"big":"12","packed":[1,2,3],"signed":-2,"counts":{"a":6},"tier":"TIER_GOLD","raw":"AP8=","name":"","on":true,"ratio":"NaN","child":{"big":"0","packed":[],"signed":0,"counts":{},"tier":"TIER_GOLD","raw":"","name":"","on":false,"ratio":0}}"##
        )
        // Any recorded message survives the round trip unchanged.
        let recorded = Data(
            [0x08, 0x7F, 0x12, 0x02, 0x05, 0x06, 0x28, 0x02, 0x3A, 0x02, 0x68, 0x69, 0x49] + [
                0, 0, 0, 0, 0, 0, 0xF8, 0x3F,
            ])
        let decoded = try #require(schema.json(recorded, type: ".t.M"))
        #expect(schema.json(try schema.message(fromJSON: decoded, type: ".t.M"), type: ".t.M") == decoded)
    }

    @Test(arguments: [
        (##"{"discount": 5}"##, "Cannot find field: discount in message t.M"),
        (##"{"tier": "TIER_PLATINUM"}"##, "Invalid enum value: TIER_PLATINUM for enum type: t.Tier"),
        (##"{"signed": 1.5}"##, "Not an int32 value: 1.5"),
        (##"{"signed": 3000000000}"##, "Not an int32 value: 3000000000"),
        (##"{"name": 7}"##, "Not a string value: 7"),
        (##"{"packed": 1}"##, "Expect an array but found: 1"),
        (##"{"on": true, "is_on": false}"##, "Field t.M.is_on has already been set."),
        (##"["not", "an", "object"]"##, ##"Expect message object but got: ["not","an","object"]"##),
    ])
    func jsonThatIsNotTheMessageIsRefusedWithTheParsersReason(json: String, reason: String) throws {
        let value = try JSONValue.parse(Data(json.utf8))
        #expect(throws: ProtoSchema.JSONParseError(description: reason)) {
            try Self.schema.message(fromJSON: value, type: ".t.M")
        }
    }

    /// A stub's answer as the client gets it from the extension: completed with zero values
    /// (so a stub that leaves fields out is not "missing" them), or UNKNOWN with the parser's
    /// reason when it cannot be a message.
    @Test func aStubsAnswerIsTheCallTheExtensionMakesOfIt() {
        let request = RecordedRequest(method: "POST", host: "t", port: 80, path: "/t.S/Get")
        func answer(_ json: String, status: String = "OK") -> RecordedResponse {
            GRPC.viewOfStubAnswer(
                RecordedResponse(
                    status: 200, headers: HeaderFields([("grpc-status-name", status)]),
                    body: CapturedBody(bytes: Data(json.utf8))), to: request, schema: Self.schema)
        }
        let partial = answer(##"{"name": "x"}"##)
        #expect(partial.status == 200 && partial.headers["grpc-status"] == "0")
        #expect(
            String(decoding: partial.body.bytes, as: UTF8.self)
                == ##"[{"big":"0","packed":[],"signed":0,"counts":{},"tier":"TIER_UNSPECIFIED","raw":"","name":"x","on":false,"ratio":0}]"##
        )
        let unknownField = answer(##"{"name": "x", "discount": 5}"##)
        #expect(unknownField.status == 500 && unknownField.headers["grpc-status"] == "2")
        #expect(unknownField.headers["grpc-message"]?.contains("Cannot find field: discount in message t.M") == true)
        #expect(String(decoding: unknownField.body.bytes, as: UTF8.self) == "[]")
        #expect(GRPC.describe(unknownField.headers, reason: true)?.hasPrefix("UNKNOWN (2): the stub's answer") == true)
        let failing = answer("", status: "UNAVAILABLE")
        #expect(failing.status == 503 && failing.headers["grpc-status"] == "14")
    }

    /// The extension shows request matchers the message as protobuf's printer writes it: no
    /// zero values, no empty lists, no fields the schema does not know.
    @Test func requestMatchersSeeTheMessageWithoutDefaults() throws {
        let request = RecordedRequest(
            method: "POST", host: "t", port: 80, path: "/t.S/Get",
            headers: HeaderFields([("content-type", "application/grpc")]),
            body: CapturedBody(bytes: Data([0, 0, 0, 0, 9, 0x3A, 0x01, 0x78, 0x18, 0x00, 0x40, 0x00, 0x78, 0x01])))
        let json = try #require(GRPC.jsonRequest(request, schema: Self.schema))
        #expect(String(decoding: json.body.bytes, as: UTF8.self) == ##"{"name":"x"}"##)
    }
}
