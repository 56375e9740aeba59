import Foundation

/// Input: a gRPC body (length-prefixed protobuf messages, or anything). The view must decode
/// it or refuse it, never trap, and what it produces must be JSON that parses again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGRPC(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    let response = RecordedResponse(
        status: 200, headers: HeaderFields([("content-type", "application/grpc")]), body: CapturedBody(bytes: data),
        trailers: HeaderFields([("grpc-status", "0")]))
    let view = GRPC.view(response)
    if !view.body.isTruncated, (try? JSONValue.parse(view.body.bytes)) == nil {
        fatalError("the view of a gRPC body is not JSON")
    }
    // The bytes as one message, too: the decoder alone.
    if let json = ProtobufWire.json(data), (try? JSONValue.parse(Data(json.serialized().utf8))) == nil {
        fatalError("a decoded message does not serialize to JSON")
    }
    return 0
}
