import CCurl
import DriftcheckCore
import Foundation

/// A mock did not answer at all: refused, timed out, or not HTTP. Exit status 3.
public struct MockUnreachable: Error, CustomStringConvertible, Sendable {
    public var service: String
    public var url: String
    public var reason: String
    /// An HTTP/2 server answered, by refusing the stream (a gRPC server asked `GET /` does).
    public var spokeHTTP2 = false
    public var description: String { "\(service): the mock at \(url) could not be reached: \(reason)" }
}

/// Sends recorded requests to a running mock with libcurl. One client per thread: it keeps
/// its connection alive between requests.
public final class CurlClient {
    private let handle: UnsafeMutableRawPointer
    public let baseURL: String
    public let service: String
    public let timeout: Double
    let reach: Reach

    /// How to reach a real `https://` upstream as the recorder does (server reflection): the
    /// recorder's extra trust roots, `--insecure-upstream`, `--resolve`.
    public struct Reach: Sendable {
        public var trustRoots: [String] = []
        public var insecure = false
        /// Host → address to connect to instead.
        public var resolve: [String: String] = [:]

        public init(trustRoots: [String] = [], insecure: Bool = false, resolve: [String: String] = [:]) {
            self.trustRoots = trustRoots
            self.insecure = insecure
            self.resolve = resolve
        }

        /// The system's roots and `trustRoots` as one PEM bundle; nil when there are no extra roots.
        var bundle: Data? {
            guard !trustRoots.isEmpty else { return nil }
            var pem = Data()
            if let path = driftcheck_curl_default_cainfo(),
                let system = FileManager.default.contents(atPath: String(cString: path))
            {
                pem += system + Data("\n".utf8)
            }
            for file in trustRoots { pem += (FileManager.default.contents(atPath: file) ?? Data()) + Data("\n".utf8) }
            return pem
        }
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init(service: String, baseURL: String, timeout: Double = 30, reach: Reach = Reach()) {
        _ = Self.globalInit
        handle = curl_easy_init()
        self.service = service
        self.reach = reach
        trustBundle = reach.bundle
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.timeout = timeout
        // h2c:// names cleartext HTTP/2 with prior knowledge (gRPC mocks); curl speaks it to http://.
        isH2C = base.lowercased().hasPrefix("h2c://")
        requestBase = isH2C ? "http://" + base.dropFirst("h2c://".count) : base
    }

    private let isH2C: Bool
    private let requestBase: String
    private var trustBundle: Data?

    deinit { curl_easy_cleanup(handle) }

    // A static string lives for the whole process; curl only reads it.
    nonisolated(unsafe) private static let emptyBody = UnsafeRawPointer(("" as StaticString).utf8Start)

    /// Headers curl must set itself, or that describe the recorded hop rather than the request.
    /// `Host` is the one deliberate rewrite: it names the mock. `Accept-Encoding` goes through
    /// curl's own option, so a compressed answer is decoded as the client decoded it.
    static let skipped: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
        "upgrade", "expect", "accept-encoding",
    ]

    /// Headers libcurl adds unless told not to; an empty value (`Accept:`) stops it.
    static let curlDefaults = ["Accept", "Content-Type"]

    /// Sends `request` exactly as recorded — method, path, query bytes, headers in their order
    /// and case, body with its Content-Length — adding nothing, and returns the answer.
    public func send(_ request: RecordedRequest) throws -> RecordedResponse {
        curl_easy_reset(handle)
        let url = requestBase + request.target
        let sink = ResponseSink()
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }

        var headerList: UnsafeMutablePointer<curl_slist>?
        for field in request.headers where !Self.skipped.contains(field.name.lowercased()) {
            headerList = curl_slist_append(headerList, "\(field.name): \(field.value)")
        }
        // The one hop-by-hop field HTTP/2 allows, and gRPC servers require.
        let isTLS = requestBase.lowercased().hasPrefix("https://")
        if isH2C || isTLS, request.headers["te"]?.lowercased() == "trailers" {
            headerList = curl_slist_append(headerList, "TE: trailers")
        }
        // An empty value stops curl from adding its own Expect: 100-continue, Accept: */* or a
        // form Content-Type the client never sent.
        headerList = curl_slist_append(headerList, "Expect:")
        for name in Self.curlDefaults where request.headers[name] == nil {
            headerList = curl_slist_append(headerList, "\(name):")
        }
        defer { curl_slist_free_all(headerList) }
        // --resolve: "HOST::ADDR:" connects to ADDR on the URL's port, keeping HOST for TLS.
        var connectTo: UnsafeMutablePointer<curl_slist>?
        for (host, address) in reach.resolve {
            let bracketed = address.contains(":") ? "[\(address)]" : address
            connectTo = curl_slist_append(connectTo, "\(host)::\(bracketed):")
        }
        defer { curl_slist_free_all(connectTo) }
        let acceptEncoding = request.headers["accept-encoding"]

        let body = request.body.bytes
        // A recorded `Content-Length: 0` is sent again; a body-less GET gets none.
        let sendsBody = !body.isEmpty || request.headers["content-length"] != nil
        let code: CURLcode = url.withCString { urlPointer in
            request.method.withCString { methodPointer in
                body.withUnsafeBytes { bodyPointer in
                    driftcheck_curl_setopt_string(handle, CURLOPT_URL, urlPointer)
                    driftcheck_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)
                    driftcheck_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
                    driftcheck_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(min(timeout, 10) * 1000))
                    driftcheck_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
                    driftcheck_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
                    driftcheck_curl_setopt_long(handle, CURLOPT_PROXY_TRANSFER_MODE, 0)
                    driftcheck_curl_setopt_string(handle, CURLOPT_PROXY, "")
                    if connectTo != nil { driftcheck_curl_setopt_slist(handle, CURLOPT_CONNECT_TO, connectTo) }
                    if isTLS {
                        driftcheck_curl_setopt_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
                        if reach.insecure {
                            driftcheck_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0)
                            driftcheck_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0)
                        }
                        if let trustBundle { Self.setTrust(handle, trustBundle) }
                    }
                    if isH2C {
                        driftcheck_curl_setopt_long(
                            handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
                        // libcurl 7.88 fails a request on an h2c connection kept from the handle's
                        // previous request after curl_easy_reset ("Error in the HTTP2 framing
                        // layer"): one connection per call.
                        driftcheck_curl_setopt_long(handle, CURLOPT_FRESH_CONNECT, 1)
                        driftcheck_curl_setopt_long(handle, CURLOPT_FORBID_REUSE, 1)
                    }
                    if let acceptEncoding {
                        _ = acceptEncoding.withCString {
                            driftcheck_curl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, $0)
                        }
                    }
                    if request.method == "HEAD" {
                        driftcheck_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
                    } else if sendsBody {
                        driftcheck_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
                        // An empty body still needs a valid pointer, or curl reads from stdin.
                        driftcheck_curl_setopt_pointer(
                            handle, CURLOPT_POSTFIELDS,
                            UnsafeMutableRawPointer(mutating: bodyPointer.baseAddress ?? Self.emptyBody))
                    }
                    if request.method != "GET" && request.method != "HEAD" || sendsBody {
                        driftcheck_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, methodPointer)
                    }
                    driftcheck_curl_setopt_callback(
                        handle, CURLOPT_WRITEFUNCTION,
                        { data, size, count, context in
                            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
                            sink.body.append(
                                UnsafeRawPointer(data!).assumingMemoryBound(to: UInt8.self), count: size * count)
                            return size * count
                        })
                    driftcheck_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque())
                    driftcheck_curl_setopt_callback(
                        handle, CURLOPT_HEADERFUNCTION,
                        { data, size, count, context in
                            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
                            let line = String(
                                decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
                            sink.header(line)
                            return size * count
                        })
                    driftcheck_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, unmanaged.toOpaque())
                    return curl_easy_perform(handle)
                }
            }
        }
        guard code == CURLE_OK else {
            throw MockUnreachable(
                service: service, url: baseURL, reason: String(cString: curl_easy_strerror(code)),
                spokeHTTP2: code == CURLE_HTTP2_STREAM)
        }
        var status = 0
        driftcheck_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return RecordedResponse(
            status: status, headers: HeaderFields(sink.headers), body: CapturedBody(bytes: sink.body),
            trailers: HeaderFields(sink.trailers))
    }
}

extension CurlClient {
    /// The trust bundle as a blob libcurl copies.
    fileprivate static func setTrust(_ handle: UnsafeMutableRawPointer, _ bundle: Data) {
        var pem = bundle
        pem.withUnsafeMutableBytes { raw in
            var blob = curl_blob(data: raw.baseAddress, len: raw.count, flags: UInt32(CURL_BLOB_COPY))
            _ = withUnsafeMutablePointer(to: &blob) {
                driftcheck_curl_setopt_pointer(handle, CURLOPT_CAINFO_BLOB, $0)
            }
        }
    }
}

private final class ResponseSink {
    var headers: [(String, String)] = []
    /// Header lines after the blank line that ends the head: trailers.
    var trailers: [(String, String)] = []
    var body = Data()
    private var headDone = false

    func header(_ line: String) {
        let trimmed = ASCII.trimmed(line)
        if trimmed.hasPrefix("HTTP/") {
            // A new status line (after a 100 Continue) starts the headers over.
            headers.removeAll()
            headDone = false
            return
        }
        if trimmed.isEmpty {
            headDone = true
            return
        }
        guard let colon = trimmed.firstIndex(of: ":") else { return }
        let field = (String(trimmed[..<colon]), String(ASCII.trimmed(trimmed[trimmed.index(after: colon)...])))
        if headDone { trailers.append(field) } else { headers.append(field) }
    }
}
