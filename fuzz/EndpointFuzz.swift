import Foundation

/// Input: a request path (or a mapping's regex, an env file, a redaction marker, a host glob). Templating,
/// naming, header normalisation, regex-to-template, env-file reading and stand-ins must never crash.
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
    _ = RouteTemplate.fromRegex(text)
    _ = DeclaredRoute(method: "GET", pattern: text, onTarget: true)?.matches(method: "GET", path: text, query: text)
    let paths = text.split(separator: "\n").map { "/" + $0 }
    _ = EndpointCatalog.learn(paths: paths) { _ in ["object", "$.a"] }.endpoint(method: "GET", path: paths.first ?? "/")
    for syntax in EnvSyntax.allCases { _ = try? EnvFile.parse(text, syntax: syntax) }
    _ = try? EnvFile.parse(text)
    _ = StandIns.text(text)
    _ = RedactionPolicy.shapeMarker(text)
    // `--intercept-tls` globs: the first line a pattern, the rest hosts to match.
    let lines = text.split(separator: "\n", maxSplits: 1).map(String.init)
    if let pattern = HostPattern(lines.first ?? "") { _ = pattern.matches(lines.count > 1 ? lines[1] : text) }
    return 0
}
