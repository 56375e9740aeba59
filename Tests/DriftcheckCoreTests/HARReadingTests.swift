import DriftcheckCore
import Foundation
import Testing

/// HAR files as other tools write them.
@Suite struct HARReadingTests {
    static func entry(_ url: String, status: Int? = 200, response: Bool = true) -> String {
        let answer =
            response
            ? #","response":{"status":\#(status ?? 0),"headers":[],"content":{"text":"{}","mimeType":"application/json"}}"#
            : ""
        return #"{"request":{"method":"GET","url":"\#(url)","headers":[]}\#(answer)}"#
    }

    static func har(_ entries: [String]) -> String {
        #"{"log":{"version":"1.1","entries":[\#(entries.joined(separator: ","))]}}"#
    }

    @Test func aByteOrderMarkIsAccepted() throws {
        var data = Data([0xEF, 0xBB, 0xBF])
        data.append(Data(Self.har([Self.entry("http://orders.shop/orders/1")]).utf8))
        let contents = try HAR.read(data)
        #expect(contents.exchanges.map(\.request.path) == ["/orders/1"])
        #expect(contents.skipped.isEmpty)
    }

    @Test func entriesThatCannotBeImportedAreSkippedAndNamed() throws {
        let text = Self.har([
            Self.entry("http://orders.shop/orders/1"), Self.entry("/relative/path"), Self.entry("orders/2"),
            Self.entry("http://orders.shop/orders/3", response: false), Self.entry("ws://orders.shop/socket"),
            Self.entry("https://orders.shop/orders/4", status: 0),
            Self.entry("https://orders.shop/orders/5", status: 404),
        ])
        let contents = try HAR.read(Data(text.utf8))
        #expect(contents.exchanges.map(\.request.path) == ["/orders/1", "/orders/5"])
        #expect(
            contents.skipped == [
                "entry 1: '/relative/path' is a relative URL", "entry 2: 'orders/2' is a relative URL",
                "entry 3: no response", "entry 4: the ws: scheme is not HTTP",
            ])
    }

    @Test func aFileThatIsNoHARStillFails() {
        #expect(throws: HAR.ReadError.self) { try HAR.read(Data("{\"log\":{}}".utf8)) }
        #expect(throws: HAR.ReadError.self) { try HAR.read(Data([0xEF, 0xBB, 0xBF, 0x7B])) }
    }
}
