import Foundation

/// Input: a request path. Templating, naming and header normalisation must never crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEndpoint(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    let template = Endpoint.templatePath(text)
    // Templating is idempotent: a template's own segments are not identifiers.
    if Endpoint.templatePath(template) != template && !template.contains("{id") {
        fatalError("not idempotent: \(text)")
    }
    _ = ServiceName.forHost(text, port: 80)
    _ = ServiceName.forVariable(text)
    _ = Differ.normaliseHeader(text)
    _ = StringFormat.of(text)
    _ = try? JSONPath.parseSegments(text)
    return 0
}
