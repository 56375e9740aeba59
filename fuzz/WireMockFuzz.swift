import Foundation

/// Input: a mapping, then NUL, then a request body. Parsing the mapping, matching a request
/// against it and building its response must never crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireMock(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    let parts = data.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
    guard let mapping = try? JSONValue.parse(Data(parts[0])), let request = mapping["request"],
        let matcher = try? RequestMatcher(request)
    else { return 0 }
    let body = parts.count > 1 ? Data(parts[1]) : Data()
    let incoming = IncomingRequest(
        RecordedRequest(
            method: "POST", host: "h", port: 80, path: "/orders/1", query: "q=1&x",
            headers: HeaderFields([("Content-Type", "application/json"), ("Cookie", "a=b; c")]),
            body: CapturedBody(bytes: body)))
    _ = matcher.matches(incoming)
    var diagnostics: [String] = []
    let builder = ResponseBuilder(
        read: { _ in .failure(BodyFileRefused(reason: "fuzz")) })
    _ = builder.build(mapping["response"] ?? .object([]), for: incoming, diagnostics: &diagnostics)
    return 0
}
