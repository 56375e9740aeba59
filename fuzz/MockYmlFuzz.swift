import Foundation

/// Input: a `mock.yml`. Parsing gives a spec or a one-line `MockConfigurationError` naming the
/// file, never a crash (Yams.load once trapped on a mapping key that is not a scalar).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMockYml(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    do {
        _ = try MockProcessSpec.parse(text, path: "mocks/orders/mock.yml")
    } catch let error as MockConfigurationError {
        if !error.description.hasPrefix("mocks/orders/mock.yml") || error.description.contains("\n") {
            fatalError("not one line naming the file: \(error.description)")
        }
    } catch {
        fatalError("not a configuration error: \(error)")
    }
    return 0
}
