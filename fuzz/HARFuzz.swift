import Foundation

/// Input: a HAR file. Import must reject or read it, and what it reads must export again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHAR(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let exchanges = try? HAR.decode(data) else { return 0 }
    let again = HAR.encode(exchanges, creatorVersion: "fuzz")
    guard let reread = try? HAR.decode(Data(again.utf8)) else { fatalError("an exported HAR does not import") }
    if reread.count != exchanges.count { fatalError("round trip lost entries") }
    return 0
}
