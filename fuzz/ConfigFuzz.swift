import Foundation

/// Input: a `driftcheck.yml`. Parsing gives a policy or a one-line `UsageError` naming the
/// file, never a crash; a policy it gives must apply to findings and build its redaction.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    let policy: Policy
    do {
        policy = try ConfigFile.parse(text, path: "driftcheck.yml")
    } catch let error as UsageError {
        if !error.description.hasPrefix("driftcheck.yml") || error.description.contains("\n") {
            fatalError("not one line naming the file: \(error.description)")
        }
        return 0
    } catch {
        fatalError("not a usage error: \(error)")
    }
    let findings = DriftKind.allCases.map {
        Finding(service: "orders", endpoint: "GET /orders/{id}", kind: $0, path: "$.items[*].sku", message: "m")
    }
    _ = policy.apply(findings, now: Date())
    _ = try? policy.redaction()
    return 0
}
