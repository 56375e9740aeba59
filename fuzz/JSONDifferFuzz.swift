import Foundation

/// Input: two JSON documents separated by a NUL byte, the real and the mock answer. Parses,
/// infers the shape and runs the differ; any crash, hang or sanitizer report is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONDiffer(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    let parts = data.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
    let real = Data(parts[0])
    let mock = parts.count > 1 ? Data(parts[1]) : real
    _ = try? JSONValue.parse(real).serialized()
    let exchange = { (body: Data, id: Int64) in
        Exchange(
            id: id, service: "fuzz",
            request: RecordedRequest(method: "GET", host: "h", port: 80, path: "/orders/\(id)"),
            result: .response(
                RecordedResponse(
                    status: 200, headers: HeaderFields([("Content-Type", "application/json")]),
                    body: CapturedBody(bytes: body))),
            startedAt: Date(timeIntervalSince1970: 0), duration: 0)
    }
    let replayed = [
        ReplayedExchange(exchange: exchange(real, 1), answer: .response(exchange(mock, 1).response!)),
        ReplayedExchange(exchange: exchange(mock, 2), answer: .response(exchange(real, 2).response!)),
    ]
    _ = Differ(explain: true).compare(service: "fuzz", replayed: replayed)
    _ = RedactionPolicy().redact(exchange(real, 3))
    return 0
}
