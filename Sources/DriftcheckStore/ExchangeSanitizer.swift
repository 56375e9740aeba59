import DriftcheckCore
import Foundation

/// The one way an exchange is made fit to keep or to hand on: compressed bodies decoded (gzip,
/// deflate, brotli, up to 16 MiB; a bomb is refused; gRPC messages one by one), then redacted — so redaction sees inside
/// compressed bodies wherever the exchange came from. Used by the recorder's writer, `import`,
/// `export` and `compare --har`.
public struct ExchangeSanitizer: Sendable {
    public let redaction: RedactionPolicy

    public init(redaction: RedactionPolicy) { self.redaction = redaction }

    public func sanitize(_ exchange: Exchange) -> Exchange { redaction.redact(Self.decoded(exchange)) }

    /// The response body decoded, `Content-Encoding` gone; unchanged when it was not encoded.
    public static func decoded(_ exchange: Exchange) -> Exchange {
        guard case .response(var response) = exchange.result,
            response.headers["content-encoding"] != nil || response.headers["grpc-encoding"] != nil
        else {
            return exchange
        }
        (response.headers, response.body) = ContentDecoding.decode(response.headers, response.body, limit: 16 << 20)
        response = GRPCDecompression.decoded(response)
        var copy = exchange
        copy.result = .response(response)
        return copy
    }
}
