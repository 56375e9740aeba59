import DriftcheckCA
import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import DriftcheckProxy
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// HTTPS interception with real TLS peers on both sides: Python's ssl (OpenSSL) as the client
/// and as the upstream, whose CA the openssl command line makes, independently of ours.
@Suite struct InterceptionTests {
    /// A Python client fetching `url` through the proxy at `proxyPort`, trusting `caFile` only.
    static func fetch(
        _ url: String, proxyPort: Int, trusting caFile: String, body: String? = nil, in directory: TemporaryDirectory,
        direct: Bool = false
    ) async throws -> (status: Int32, output: String) {
        let log = directory.file("client-\(UUID().uuidString.prefix(6)).log")
        let proxy = direct ? "direct" : "127.0.0.1:\(proxyPort)"
        let process = try ChildProcess.spawn(
            ["python3", Fixtures.path("tls/https_upstream.py"), "get", proxy, url, caFile]
                + (body.map { [$0] } ?? []), environment: ProcessInfo.processInfo.environment, outputPath: log)
        let status = await process.wait()
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    /// A forward proxy intercepting `patterns` with a new CA, resolving `secure.test` to loopback
    /// and trusting the upstream's CA.
    static func proxy(intercepting patterns: [String], upstream: HTTPSUpstream, ca: CADirectory) async throws
        -> ProxyHarness
    {
        let authority = try ca.create(now: Date())
        var configuration = ProxyConfiguration()
        configuration.resolve = ["secure.test": "127.0.0.1"]
        configuration.upstreamTrustRoots = [upstream.caPath]
        configuration.interception = TLSInterception(
            hosts: patterns.compactMap(HostPattern.init), issuer: LeafIssuer(authority: authority))
        return try await ProxyHarness.start(.forward, configuration: configuration)
    }

    @Test func aMatchedHostIsRecordedAsHTTPSAndReencryptedWithVerification() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await HTTPSUpstream.start(in: directory, names: ["secure.test"])
        defer { upstream.stop() }
        let ca = CADirectory(path: directory.file("ca"))
        let harness = try await Self.proxy(intercepting: ["*.test"], upstream: upstream, ca: ca)
        defer { harness.remove() }
        let base = "https://secure.test:\(upstream.port)"
        let get = try await Self.fetch(
            "\(base)/v1/charges?limit=2", proxyPort: harness.port, trusting: ca.certificatePath, in: directory)
        #expect(get.status == 0, "\(get.output)")
        #expect(get.output.hasPrefix("200 "), "\(get.output)")
        #expect(get.output.contains("\"path\": \"/v1/charges?limit=2\""), "\(get.output)")
        let post = try await Self.fetch(
            "\(base)/v1/charges", proxyPort: harness.port, trusting: ca.certificatePath, body: "{\"amount\":5}",
            in: directory)
        #expect(post.output.hasPrefix("200 "), "\(post.output)")
        let destination = "secure.test:\(upstream.port)"
        #expect(harness.proxy.coverage.intercepted[destination] == 2)
        #expect(harness.proxy.coverage.tunnelled.isEmpty)
        let stored = try await harness.finish()
        #expect(stored.count == 2)
        for exchange in stored {
            #expect(exchange.service == "secure")
            #expect(exchange.request.scheme == "https")
            #expect(exchange.request.host == "secure.test")
            #expect(exchange.request.port == upstream.port)
            #expect(exchange.request.path == "/v1/charges")
            #expect(exchange.response?.status == 200)
            #expect(
                exchange.response.map { String(decoding: $0.body.bytes, as: UTF8.self) }?.contains("\"secure\": true")
                    == true)
        }
        #expect(stored.first { $0.request.method == "POST" }?.request.body.bytes == Data("{\"amount\":5}".utf8))
        #expect(stored.first { $0.request.method == "GET" }?.request.query == "limit=2")
    }

    /// A service that reaches `PAYMENTS_SERVICE_HOST:443` over TLS meets a reverse listener: with
    /// the dependency matched, its TLS is terminated there (the certificate covers the address
    /// the client reached) and recorded like a forward-proxy interception.
    @Test func tlsToAServiceListenerIsInterceptedWhenItsDependencyMatches() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await HTTPSUpstream.start(in: directory, names: ["secure.test"])
        defer { upstream.stop() }
        let ca = CADirectory(path: directory.file("ca"))
        var configuration = ProxyConfiguration()
        configuration.resolve = ["secure.test": "127.0.0.1"]
        configuration.upstreamTrustRoots = [upstream.caPath]
        configuration.interception = TLSInterception(
            hosts: [HostPattern("secure.test")!], issuer: LeafIssuer(authority: try ca.create(now: Date())))
        let harness = try await ProxyHarness.start(
            .reverse(
                service: "payments", upstream: UpstreamURL(scheme: "http", host: "secure.test", port: upstream.port)),
            configuration: configuration)
        defer { harness.remove() }
        let answer = try await Self.fetch(
            "https://127.0.0.1:\(harness.port)/v1/refunds", proxyPort: 0, trusting: ca.certificatePath, in: directory,
            direct: true)
        #expect(answer.output.hasPrefix("200 "), "\(answer.output)")
        #expect(harness.proxy.coverage.intercepted == ["secure.test:\(upstream.port)": 1])
        let stored = try await harness.finish()
        #expect(
            stored.map { "\($0.service) \($0.request.scheme) \($0.request.path) \($0.response?.status ?? 0)" } == [
                "payments https /v1/refunds 200"
            ])
    }

    /// An HTTP/2 client (curl with prior knowledge) whose `https://` dependency answers ALPN with
    /// HTTP/1.1 only (Python's ssl server offers no h2): the calls go on over HTTP/1.1 and are
    /// recorded the same; later calls to that origin use the HTTP/1.1 pool straight away.
    /// An HTTP/2 client inside an intercepted tunnel that opens its connection and says nothing
    /// more gets the idle limit an h2c client gets: a GOAWAY (NO_ERROR), then the close.
    @Test func anIdleHTTP2ConnectionInsideAnInterceptedTunnelIsEnded() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ca = CADirectory(path: directory.file("ca"))
        var configuration = ProxyConfiguration()
        configuration.idleTimeout = .seconds(1)
        configuration.interception = TLSInterception(
            hosts: [HostPattern("secure.test")!], issuer: LeafIssuer(authority: try ca.create(now: Date())))
        let harness = try await ProxyHarness.start(.forward, configuration: configuration)
        defer { harness.remove() }
        let log = directory.file("client.log")
        let client = try ChildProcess.spawn(
            [
                "python3", Fixtures.path("grpc/hostile_h2.py"), String(harness.port), "idle", "--connect",
                "secure.test:443", ca.certificatePath,
            ], environment: ProcessInfo.processInfo.environment, outputPath: log)
        #expect(await client.wait() == 0)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output == "goaway 0 closed\n", "\(output)")
        #expect(harness.proxy.coverage.intercepted == ["secure.test:443": 1])
        #expect(try await harness.finish().isEmpty)
    }

    @Test func anHTTP2ClientReachesAnHTTPSUpstreamThatOnlySpeaksHTTP1() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await HTTPSUpstream.start(in: directory, names: ["secure.test"])
        defer { upstream.stop() }
        var configuration = ProxyConfiguration()
        configuration.resolve = ["secure.test": "127.0.0.1"]
        configuration.upstreamTrustRoots = [upstream.caPath]
        let harness = try await ProxyHarness.start(
            .reverse(
                service: "payments", upstream: UpstreamURL(scheme: "https", host: "secure.test", port: upstream.port)),
            configuration: configuration)
        defer { harness.remove() }
        for (index, path) in ["/v1/first", "/v1/second", "/v1/third"].enumerated() {
            let log = directory.file("curl-\(index).log")
            let curl = try ChildProcess.spawn(
                [
                    "curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}",
                    "http://127.0.0.1:\(harness.port)\(path)", "-d", "n=\(index)",
                ], environment: ProcessInfo.processInfo.environment, outputPath: log)
            #expect(await curl.wait() == 0)
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(output.contains("\"path\": \"\(path)\"") && output.hasSuffix("\n2 200"), "\(output)")
        }
        let stored = try await harness.finish()
        #expect(
            stored.map { "\($0.request.scheme) \($0.request.path) \($0.response?.status ?? 0)" } == [
                "https /v1/first 200", "https /v1/second 200", "https /v1/third 200",
            ])
        #expect(stored.map { String(decoding: $0.request.body.bytes, as: UTF8.self) } == ["n=0", "n=1", "n=2"])
    }

    @Test func anUpstreamWithABadCertificateGives502WithTheReasonAndNoSample() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await HTTPSUpstream.start(in: directory, names: ["secure.test"], selfSigned: true)
        defer { upstream.stop() }
        let ca = CADirectory(path: directory.file("ca"))
        // The self-signed certificate is not under upstream-ca.pem: verification must fail.
        let harness = try await Self.proxy(intercepting: ["secure.test"], upstream: upstream, ca: ca)
        defer { harness.remove() }
        let answer = try await Self.fetch(
            "https://secure.test:\(upstream.port)/v1/charges", proxyPort: harness.port, trusting: ca.certificatePath,
            in: directory)
        #expect(answer.output.hasPrefix("502 "), "\(answer.output)")
        #expect(answer.output.contains("certificate did not verify"), "\(answer.output)")
        #expect(answer.output.contains("CERTIFICATE_VERIFY_FAILED"), "\(answer.output)")
        let stored = try await harness.finish()
        #expect(stored.count == 1)
        #expect(stored.first?.response == nil)
        guard case .failure(let failure)? = stored.first?.result else {
            Issue.record("no failure stored: \(stored)")
            return
        }
        #expect(failure.kind == .connect)
        #expect(failure.detail.contains("CERTIFICATE_VERIFY_FAILED"))
    }

    @Test func anUnmatchedHostIsTunnelledUntouchedAndNotRecorded() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await HTTPSUpstream.start(in: directory, names: ["secure.test"])
        defer { upstream.stop() }
        let ca = CADirectory(path: directory.file("ca"))
        let harness = try await Self.proxy(intercepting: ["*.stripe.com"], upstream: upstream, ca: ca)
        defer { harness.remove() }
        // The client sees the upstream's own certificate: it trusts the upstream's CA, not ours.
        let answer = try await Self.fetch(
            "https://secure.test:\(upstream.port)/v1/charges", proxyPort: harness.port, trusting: upstream.caPath,
            in: directory)
        #expect(answer.output.hasPrefix("200 "), "\(answer.output)")
        #expect(harness.proxy.coverage.tunnelled == ["secure.test:\(upstream.port)": 1])
        #expect(harness.proxy.coverage.intercepted.isEmpty)
        #expect(try await harness.finish().isEmpty)
    }

    @Test func aClientThatRefusesTheCertificateIsCountedWithTheReason() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await HTTPSUpstream.start(in: directory, names: ["secure.test"])
        defer { upstream.stop() }
        let ca = CADirectory(path: directory.file("ca"))
        let harness = try await Self.proxy(intercepting: ["secure.test"], upstream: upstream, ca: ca)
        defer { harness.remove() }
        // As a client that pins its dependency's CA would: it trusts the upstream's CA only.
        let answer = try await Self.fetch(
            "https://secure.test:\(upstream.port)/v1/charges", proxyPort: harness.port, trusting: upstream.caPath,
            in: directory)
        #expect(answer.status == 3, "\(answer.output)")
        #expect(answer.output.contains("CERTIFICATE_VERIFY_FAILED"), "\(answer.output)")
        // The client may exit before the proxy has seen its side of the connection end.
        let proxy = harness.proxy
        _ = await eventually(timeout: 30) { proxy.coverage.refused["secure.test:\(upstream.port)"] != nil }
        let refusal = try #require(harness.proxy.coverage.refused["secure.test:\(upstream.port)"])
        #expect(refusal.connections == 1)
        #expect(refusal.reason.contains("does not trust the driftcheck CA"), "\(refusal.reason)")
        #expect(!refusal.reason.contains(".cc:"), "\(refusal.reason)")
        #expect(
            harness.proxy.coverage.lines.contains {
                $0.hasPrefix("secure.test:\(upstream.port): client refused the driftcheck certificate, not recorded")
            })
        #expect(try await harness.finish().isEmpty)
    }
}
