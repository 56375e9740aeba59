import Foundation

/// Input: a selector byte, then text. The XML comparison, XPath evaluation and date-time parsing
/// behind WireMock's equalToXml, matchesXPath and date matchers must never crash, whatever the
/// document, expression or date holds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMatchers(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard count > 1 else { return 0 }
    let data = Data(bytes: start, count: count)
    let text = String(decoding: data.dropFirst(), as: UTF8.self)
    let halves = text.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
    let first = halves[0]
    let second = halves.count > 1 ? halves[1] : ""
    switch data[data.startIndex] % 4 {
    case 0:
        _ = XMLMatching.equal(
            expected: first, actual: second, placeholders: XMLMatching.Placeholders(enabled: true))
    case 1:
        _ = XMLMatching.xpath(first, in: second, namespaces: ["s": "urn:shop"])
    case 2:
        _ = DateMatcher.parse(first, format: nil)
        if let shifted = DateMatcher.shift(Date(timeIntervalSince1970: 0), by: second) {
            _ = DateMatcher.Truncation.allCases.map { $0.apply(shifted) }
        }
    default:
        let spec = JSONValue.object([
            ("before", .string(first)), ("truncateExpected", .string("first day of month")),
            ("actualFormat", .string(second)),
        ])
        if let matcher = try? DateMatcher(.before, spec, now: Date(timeIntervalSince1970: 0), context: "fuzz") {
            _ = matcher.matches(second)
        }
    }
    return 0
}
