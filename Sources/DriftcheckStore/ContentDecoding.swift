import CBrotli
import CZlib
import DriftcheckCore
import Foundation

/// Decodes `Content-Encoding: gzip` / `deflate` / `br` bodies so redaction and comparison see
/// the JSON inside. Output is capped: a decompression bomb is refused, never expanded.
public enum ContentDecoding {
    public enum Outcome: Equatable {
        case decoded(Data)
        /// The decoded body would exceed the cap.
        case tooLarge
        case invalid
    }

    public static func inflate(_ data: Data, limit: Int) -> Outcome {
        var stream = z_stream()
        // 15 + 32: zlib or gzip header, detected automatically.
        guard driftcheck_inflate_init(&stream, 15 + 32) == Z_OK else { return .invalid }
        defer { inflateEnd(&stream) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        return data.withUnsafeBytes { (input: UnsafeRawBufferPointer) -> Outcome in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                let status = chunk.withUnsafeMutableBufferPointer { buffer -> Int32 in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = uInt(buffer.count)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                output.append(contentsOf: chunk[0..<produced])
                if output.count > limit { return .tooLarge }
                switch status {
                case Z_STREAM_END: return .decoded(output)
                case Z_OK: if stream.avail_in == 0 && produced == 0 { return .decoded(output) }
                case Z_BUF_ERROR: return stream.avail_in == 0 ? .decoded(output) : .invalid
                default: return .invalid
                }
            }
        }
    }

    /// Brotli (RFC 7932), streamed through the decoder in 64 KiB steps so the cap holds.
    public static func unbrotli(_ data: Data, limit: Int) -> Outcome {
        guard let state = BrotliDecoderCreateInstance(nil, nil, nil) else { return .invalid }
        defer { BrotliDecoderDestroyInstance(state) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        return data.withUnsafeBytes { (input: UnsafeRawBufferPointer) -> Outcome in
            var availableIn = input.count
            var nextIn = input.bindMemory(to: UInt8.self).baseAddress
            while true {
                var availableOut = chunk.count
                let result = chunk.withUnsafeMutableBufferPointer { buffer -> BrotliDecoderResult in
                    var nextOut = buffer.baseAddress
                    return BrotliDecoderDecompressStream(state, &availableIn, &nextIn, &availableOut, &nextOut, nil)
                }
                output.append(contentsOf: chunk[0..<(chunk.count - availableOut)])
                if output.count > limit { return .tooLarge }
                switch result {
                case BROTLI_DECODER_RESULT_SUCCESS: return .decoded(output)
                case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT: continue
                // The input ended early: a truncated capture decodes to a prefix, as with gzip.
                case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT: return .decoded(output)
                default: return .invalid
                }
            }
        }
    }

    /// `response` with a gzip/deflate/br body replaced by its decoded form (capped at `limit`)
    /// and the encoding recorded in `X-Driftcheck-Decoded`. Anything else is returned as is.
    public static func decode(_ headers: HeaderFields, _ body: CapturedBody, limit: Int) -> (HeaderFields, CapturedBody)
    {
        guard let encoding = headers["content-encoding"].map({ ASCII.lowercased(ASCII.trimmed($0)) }),
            encoding == "gzip" || encoding == "deflate" || encoding == "x-gzip" || encoding == "br",
            !body.bytes.isEmpty
        else { return (headers, body) }
        var rewritten = headers
        let outcome = encoding == "br" ? unbrotli(body.bytes, limit: limit) : inflate(body.bytes, limit: limit)
        switch outcome {
        case .decoded(let data):
            rewritten.remove("content-encoding")
            rewritten.add("X-Driftcheck-Decoded", encoding)
            // A truncated stream decodes to a prefix, and stays marked truncated.
            return (
                rewritten,
                CapturedBody(bytes: data, size: body.isTruncated ? max(body.size, data.count + 1) : data.count)
            )
        case .tooLarge:
            // Keep no part of a body that could not be checked for secrets.
            rewritten.add("X-Driftcheck-Decoded", "\(encoding); refused: larger than \(limit) bytes decoded")
            return (rewritten, CapturedBody(bytes: Data(), size: body.size))
        case .invalid:
            rewritten.add("X-Driftcheck-Decoded", "\(encoding); refused: not valid \(encoding)")
            return (rewritten, CapturedBody(bytes: Data(), size: body.size))
        }
    }
}

/// gRPC messages compressed one by one (`grpc-encoding: gzip` or `deflate`, the message's
/// compressed flag set): decoded, each under the same cap as bodies, so that comparison sees the
/// messages. The answer loses `grpc-encoding`; one message that does not decode leaves it as it came.
public enum GRPCDecompression {
    public static func decoded(_ response: RecordedResponse, limit: Int = 16 << 20) -> RecordedResponse {
        guard let encoding = response.headers["grpc-encoding"]?.lowercased(),
            encoding == "gzip" || encoding == "deflate",
            GRPC.isGRPC(response.headers), !response.body.isTruncated,
            let messages = GRPC.messages(response.body.bytes), messages.contains(where: \.compressed)
        else { return response }
        var body = Data()
        for message in messages {
            var bytes = message.bytes
            if message.compressed {
                guard case .decoded(let plain) = ContentDecoding.inflate(message.bytes, limit: limit) else {
                    return response
                }
                bytes = plain
            }
            body.append(0)
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { body.append(contentsOf: $0) }
            body.append(bytes)
        }
        var copy = response
        copy.headers.remove("grpc-encoding")
        copy.body = CapturedBody(bytes: body)
        return copy
    }
}
