import DriftcheckCore
import Foundation
import Testing

@Suite struct JSONValueTests {
    @Test func roundTripsKeepingOrderAndNumberSpelling() throws {
        let text = #"{"b":1,"a":[1.50,-2e3,true,null,"x\"y\u00e9\n"],"c":{}}"#
        let value = try JSONValue.parse(text)
        #expect(value.serialized() == #"{"b":1,"a":[1.50,-2e3,true,null,"x\"yé\n"],"c":{}}"#)
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test func integerAndFloatAreDifferentTypeNamesButEqualValues() throws {
        #expect(JSONShape.typeName(.number("3")) == "integer")
        #expect(JSONShape.typeName(.number("3.0")) == "number")
        #expect(JSONValue.number("3") == JSONValue.number("3.0"))
    }

    @Test func decodesSurrogatePairs() throws {
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01x", "\"unterminated", "nul", "[1] 2", "\"\u{01}\""])
    func rejectsMalformedDocuments(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func rejectsDeepNestingInsteadOfOverflowingTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }

    @Test func rejectsInvalidUTF8() {
        let bytes = Data([0x22, 0xFF, 0xFE, 0x22])
        #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
    }

    @Test func formatsAndParsesJSONPaths() throws {
        let segments = ["items", "[*]", "unit price"]
        let text = JSONPath.format(segments)
        #expect(text == "$.items[*]['unit price']")
        #expect(try JSONPath.parseSegments(text) == segments)
        #expect(throws: JSONPath.ParseError.self) { try JSONPath.parseSegments("items.x") }
        // Found by the endpoint fuzz target: the quotes of "[']" overlap.
        #expect(throws: JSONPath.ParseError.self) { try JSONPath.parseSegments("$[']") }
        #expect(try JSONPath.parseSegments("$['']") == [""])
    }

    @Test func harNumbersOutOfRangeAreRejectedNotTrapped() throws {
        // Found by the HAR fuzz target.
        let har =
            #"{"log":{"entries":[{"request":{"method":"GET","url":"http://h/x","bodySize":1e300},"response":{"status":2e400,"content":{"size":-1e99}}}]}}"#
        #expect(try HAR.decode(Data(har.utf8)).isEmpty)
        let ok =
            #"{"log":{"entries":[{"request":{"method":"GET","url":"http://h/x","bodySize":1e300},"response":{"status":200.0,"content":{"size":1e300}}}]}}"#
        #expect(try HAR.decode(Data(ok.utf8)).first?.response?.status == 200)
    }
}
