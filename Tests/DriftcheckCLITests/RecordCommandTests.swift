import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// These run the built binary: signals, exit statuses and stderr are what users see.
@Suite(.serialized) struct RecordCommandTests {
    @Test(arguments: [SIGINT, SIGTERM])
    func aSignalFlushesEveryExchangeAndExitsZero(signal: Int32) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await TestUpstream.start()
        let (running, store, port) = try await startRecorder(for: upstream, in: directory)
        #expect(running.output.contains("driftcheck: listening on http://127.0.0.1:\(port) (orders"))
        let requests = (1...50).map { ClientRequest("GET", "/orders/\($0)") }
        let responses = try await LoopbackHTTPClient.send(requests, port: port, group: testGroup)
        #expect(responses.count == 50)

        running.process.signalGroup(signal)
        let status = await running.process.wait()
        #expect(status == 0, "\(running.output)")
        #expect(running.output.contains("recorded 50 exchanges in \(store)"))
        let reopened = try SQLiteStore(path: store)
        #expect(try reopened.count() == 50)
        #expect(try reopened.summaries().map(\.endpoint) == ["GET /orders/{id}"])
        await upstream.stop()
    }

    @Test func wrappedCommandGetsRewrittenVariablesAndItsStatusIsReturned() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let orders = try await TestUpstream.start()
        let elsewhere = try await TestUpstream.start(host: "127.0.0.2")
        let store = directory.file("recordings.sqlite")
        let envFile = try directory.write(
            "intercept.env",
            "ORDERS_URL=\(orders.baseURL)/api\nPAYMENTS_URL=http://payments.shop.invalid:81\nGREETING=hello\n")
        let script = try directory.write(
            "service.py",
            """
            import json, os, sys, urllib.request
            urllib.request.urlopen(os.environ["ORDERS_URL"].replace("/api", "") + "/orders/3").read()
            urllib.request.urlopen("http://127.0.0.2:\(elsewhere.port)/customers/9").read()
            keys = ["ORDERS_URL", "PAYMENTS_URL", "GREETING", "HTTP_PROXY", "NO_PROXY"]
            json.dump({k: os.environ.get(k) for k in keys}, open(sys.argv[1], "w"))
            sys.exit(7)
            """)
        let seen = directory.file("seen.json")
        let result = try await DriftcheckBinary.run(
            [
                "record", "--store", store, "--env-file", envFile, "--rewrite-env", "ORDERS_URL", "--", "python3",
                script, seen,
            ],
            in: directory)
        #expect(result.status == 7, "\(result.output)")

        let environment = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: seen)))
        guard case .string(let ordersURL)? = environment["ORDERS_URL"],
            case .string(let paymentsURL)? = environment["PAYMENTS_URL"],
            case .string(let proxyURL)? = environment["HTTP_PROXY"]
        else {
            Issue.record("variables missing: \(environment.serialized())")
            return
        }
        #expect(ordersURL.hasPrefix("http://127.0.0.1:") && ordersURL.hasSuffix("/api"))
        #expect(ordersURL != "\(orders.baseURL)/api")
        #expect(paymentsURL.hasPrefix("http://127.0.0.1:"))
        #expect(proxyURL.hasPrefix("http://127.0.0.1:"))
        #expect(environment["GREETING"] == .string("hello"))
        #expect(result.output.contains("(orders → \(orders.baseURL))"))
        #expect(result.output.contains("(payments → http://payments.shop.invalid:81)"))

        let stored = try SQLiteStore(path: store).exchanges()
        #expect(Set(stored.map(\.service)) == ["orders", "127.0.0.2-\(elsewhere.port)"])
        #expect(stored.first { $0.service == "orders" }?.request.path == "/orders/3")
        await orders.stop()
        await elsewhere.stop()
    }

    /// A service under `record -- python3 svc.py` with the variables an intercept hands it:
    /// Kubernetes service variables, a cluster `host:port`, a URL, all from an env file in
    /// Telepresence's `sh` syntax with hard values, cluster names reached through `--resolve`.
    @Test func everyFormAnInterceptUsesIsRecordedUnderItsServiceName() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let payments = try await TestUpstream.start()
        let inventory = try await TestUpstream.start()
        let orders = try await TestUpstream.start()
        let secure = try await HTTPSUpstream.start(in: directory, names: ["api.payments-gateway.test"])
        defer { secure.stop() }
        let store = directory.file("recordings.sqlite")
        let envFile = try directory.write(
            "intercept.env",
            """
            GREETING='hello world'
            INVENTORY_ADDR=inventory.shop.svc.cluster.local:\(inventory.port)
            KUBERNETES_SERVICE_HOST=10.96.0.1
            KUBERNETES_SERVICE_PORT=443
            ORDERS_URL=http://orders.shop.svc:\(orders.port)/api
            PAYMENTS_PORT=tcp://127.0.0.1:\(payments.port)
            PAYMENTS_PORT_\(payments.port)_TCP=tcp://127.0.0.1:\(payments.port)
            PAYMENTS_PORT_\(payments.port)_TCP_ADDR=127.0.0.1
            PAYMENTS_PORT_\(payments.port)_TCP_PORT=\(payments.port)
            PAYMENTS_PORT_\(payments.port)_TCP_PROTO=tcp
            PAYMENTS_SERVICE_HOST=127.0.0.1
            PAYMENTS_SERVICE_PORT=\(payments.port)
            PAYMENTS_SERVICE_PORT_HTTP=\(payments.port)
            QUOTE=it\\''s $HOME a=b'
            TELEPRESENCE_ROOT=''

            """)
        let script = try directory.write(
            "svc.py",
            """
            import json, os, sys, urllib.request
            e = os.environ
            urllib.request.urlopen("http://%s:%s/echo/payments" % (e["PAYMENTS_SERVICE_HOST"], e["PAYMENTS_SERVICE_PORT"])).read()
            urllib.request.urlopen("http://%s/echo/stock" % e["INVENTORY_ADDR"]).read()
            urllib.request.urlopen(e["ORDERS_URL"].replace("/api", "") + "/orders/3").read()
            # HTTPS through https_proxy, intercepted: trusted through SSL_CERT_FILE alone.
            urllib.request.urlopen("https://api.payments-gateway.test:%s/v1/charges?limit=1" % sys.argv[3]).read()
            # HTTPS through the proxy is a CONNECT tunnel: passed through, counted, not recorded.
            import http.client, urllib.parse
            proxy = urllib.parse.urlparse(e["HTTPS_PROXY"])
            tunnel = http.client.HTTPConnection(proxy.hostname, proxy.port)
            tunnel.request("CONNECT", "127.0.0.1:%s" % sys.argv[2])
            assert tunnel.getresponse().status == 200
            tunnel.close()
            json.dump(dict(e), open(sys.argv[1], "w"))
            """)
        let seen = directory.file("seen.json")
        let result = try await DriftcheckBinary.run(
            [
                "record", "--store", store, "--env-file", envFile, "--env-syntax", "sh", "--resolve",
                "inventory.shop.svc.cluster.local=127.0.0.1", "--resolve", "orders.shop.svc=127.0.0.1", "--resolve",
                "api.payments-gateway.test=127.0.0.1", "--intercept-tls", "*.payments-gateway.test", "--ca-dir",
                directory.file("ca"), "--upstream-ca", secure.caPath, "--", "python3", script, seen,
                String(orders.port), String(secure.port),
            ],
            in: directory)
        #expect(result.status == 0, "\(result.output)")
        let environment = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: seen)))
        // Every form of the payments service points at one listener, consistently.
        guard case .string(let port)? = environment["PAYMENTS_SERVICE_PORT"] else {
            Issue.record("no PAYMENTS_SERVICE_PORT: \(environment.serialized())")
            return
        }
        #expect(port != String(payments.port))
        #expect(environment["PAYMENTS_SERVICE_HOST"] == .string("127.0.0.1"))
        #expect(environment["PAYMENTS_SERVICE_PORT_HTTP"] == .string(port))
        #expect(environment["PAYMENTS_PORT"] == .string("tcp://127.0.0.1:\(port)"))
        #expect(environment["PAYMENTS_PORT_\(payments.port)_TCP_PORT"] == .string(port))
        #expect(environment["PAYMENTS_PORT_\(payments.port)_TCP_PROTO"] == .string("tcp"))
        // The API server is left alone; values are read exactly as the sh syntax wrote them.
        #expect(environment["KUBERNETES_SERVICE_HOST"] == .string("10.96.0.1"))
        #expect(environment["QUOTE"] == .string("it's $HOME a=b"))
        #expect(environment["GREETING"] == .string("hello world"))
        #expect(environment["TELEPRESENCE_ROOT"] == .string(""))
        #expect(
            environment["INVENTORY_ADDR"].flatMap { if case .string(let v) = $0 { v } else { nil } }?.hasPrefix(
                "127.0.0.1:") == true)
        for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"] {
            #expect(
                environment[name].flatMap { if case .string(let v) = $0 { v } else { nil } }?.hasPrefix(
                    "http://127.0.0.1:") == true, "\(name)")
        }
        let stored = try SQLiteStore(path: store).exchanges()
        #expect(
            Set(stored.map { "\($0.service) \($0.request.path)" }) == [
                "payments /echo/payments", "inventory /echo/stock", "orders /orders/3", "api /v1/charges",
            ])
        #expect(stored.first { $0.service == "api" }?.request.scheme == "https")
        // The child trusts the driftcheck CA through the variables every TLS stack reads.
        let bundle = directory.file("ca/trust-bundle.pem")
        for name in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
            #expect(environment[name] == .string(bundle), "\(name)")
        }
        #expect(environment["NODE_EXTRA_CA_CERTS"] == .string(directory.file("ca/ca.pem")))
        // At exit, every destination and how it was reached.
        for line in [
            "payments: recorded (1 exchange)", "inventory: recorded (1 exchange)", "orders: recorded (1 exchange)",
            "127.0.0.1:\(orders.port): tunnelled, not recorded (1 connection",
            "api: recorded (1 exchange)",
            "api.payments-gateway.test:\(secure.port): TLS intercepted, recorded as https",
            "made a local CA in \(directory.file("ca"))",
        ] {
            #expect(result.output.contains(line), "\(result.output)")
        }
        await payments.stop()
        await inventory.stop()
        await orders.stop()
    }

    @Test func caInitMakesAPrivateKeyAndCAPrintShowsHowToTrustIt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let caDirectory = directory.file("ca")
        let made = try await DriftcheckBinary.run(["ca", "init", "--ca-dir", caDirectory], in: directory)
        #expect(made.status == 0, "\(made.output)")
        var status = stat()
        stat(directory.file("ca/ca-key.pem"), &status)
        #expect(status.st_mode & 0o777 == 0o600)
        let again = try await DriftcheckBinary.run(["ca", "init", "--ca-dir", caDirectory], in: directory)
        #expect(again.status == 2)
        #expect(
            again.output
                == "driftcheck: error: \(caDirectory): a driftcheck CA exists already (--force replaces it; clients must then trust the new one)\n"
        )
        let printed = try await DriftcheckBinary.run(["ca", "print", "--ca-dir", caDirectory], in: directory)
        #expect(printed.status == 0)
        #expect(printed.output.contains("-----BEGIN CERTIFICATE-----\n"), "\(printed.output)")
        #expect(printed.output.contains("update-ca-certificates"))
        // A key others can read is refused by every command that would use it, in one line.
        chmod(directory.file("ca/ca-key.pem"), 0o644)
        for arguments in [
            ["ca", "print", "--ca-dir", caDirectory],
            [
                "record", "--store", directory.file("s.sqlite"), "--intercept-tls", "*.example", "--ca-dir",
                caDirectory, "--listen", "127.0.0.1:0",
            ],
        ] {
            let refused = try await DriftcheckBinary.run(arguments, in: directory)
            #expect(refused.status == 2, "\(refused.output)")
            #expect(refused.output.split(separator: "\n").count == 1, "\(refused.output)")
            #expect(refused.output.contains("the CA key is readable by others (mode 644)"), "\(refused.output)")
        }
        let missing = try await DriftcheckBinary.run(
            ["ca", "print", "--ca-dir", directory.file("none")], in: directory)
        #expect(missing.status == 2)
        #expect(missing.output.contains("no driftcheck CA here (run 'driftcheck ca init'"), "\(missing.output)")
    }

    @Test(arguments: [
        (["record", "--intercept-tls", "bad host!", "--listen", "127.0.0.1:0"], "--intercept-tls 'bad host!'"),
        (
            ["record", "--upstream-ca", "/nonexistent/ca.pem", "--listen", "127.0.0.1:0"],
            "--upstream-ca /nonexistent/ca.pem: cannot read"
        ),
        (
            ["record", "--upstream-ca", "/etc/hostname", "--listen", "127.0.0.1:0"],
            "--upstream-ca /etc/hostname: not PEM certificates"
        ),
        (["record", "--upstream", "orders"], "--upstream 'orders'"),
        (["record", "--upstream", "orders=ftp://x"], "is not an http:// or https:// URL"),
        (["record", "--listen", "nowhere"], "--listen 'nowhere'"),
        (["record", "--max-body", "lots", "--listen", "127.0.0.1:0"], "--max-body 'lots'"),
        (["record", "--upstream-timeout", "-1", "--listen", "127.0.0.1:0"], "--upstream-timeout"),
        (["record", "--redact-field", "$..bad", "--listen", "127.0.0.1:0"], "--redact-field"),
        (["record", "--env-file", "/nonexistent/e.env", "--", "true"], "--env-file /nonexistent/e.env: cannot read"),
        (["record", "--rewrite-env", "X", "--listen", "127.0.0.1:0"], "--rewrite-env needs a command"),
        (["record", "--", "/nonexistent/program"], "cannot start '/nonexistent/program'"),
        (["record", "--no-such-flag"], "--no-such-flag"),
        (["list", "--store", "/nonexistent/store.sqlite"], "/nonexistent/store.sqlite: no such store"),
        (["frobnicate"], "frobnicate"),
    ])
    func badInputExitsTwoWithAMessageNamingIt(arguments: [String], message: String) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store =
            arguments.contains("--store") || arguments == ["frobnicate"] ? [] : ["--store", directory.file("s.sqlite")]
        let result = try await DriftcheckBinary.run(arguments + store, in: directory)
        #expect(result.status == 2, "\(result.output)")
        #expect(result.output.contains(message), "\(result.output)")
        #expect(result.output.split(separator: "\n").count == 1, "\(result.output)")
        #expect(result.output.hasPrefix("driftcheck: error: "))
    }

    @Test func aFileThatIsNotAStoreIsRefusedByNameAndLeftAlone() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("store.sqlite", "this is my thesis, not a database")
        for command in [["list"], ["record", "--listen", "127.0.0.1:0"]] {
            let result = try await DriftcheckBinary.run(command + ["--store", path], in: directory)
            #expect(result.status == 2)
            #expect(result.output.contains("\(path): not a driftcheck store"), "\(result.output)")
            #expect(result.output.split(separator: "\n").count == 1)
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "this is my thesis, not a database")
    }

    @Test func anUpstreamThatIsDownGives502AndNoSample() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = directory.file("recordings.sqlite")
        let running = try DriftcheckBinary.start(
            ["record", "--store", store, "--upstream", "orders=http://127.0.0.1:1", "--listen", "127.0.0.1:0"],
            in: directory)
        let port = try await running.listeners(1)[0]
        let response = try await LoopbackHTTPClient.send(
            ClientRequest("GET", "/orders/1"), port: port, group: testGroup)
        #expect(response.status == 502)
        running.process.signalGroup(SIGINT)
        #expect(await running.process.wait() == 0)
        #expect(running.output.contains("1 failed upstream call"))
        let stored = try SQLiteStore(path: store)
        #expect(try stored.count() == 1)
        #expect(try stored.exchanges(includeFailures: false).isEmpty)
    }
}

@Suite struct ListAndDemoTests {
    @Test func listsATableAndJSON() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = directory.file("s.sqlite")
        let recordings = try SQLiteStore(path: store)
        let base = Date(timeIntervalSince1970: 1_790_000_000)
        let exchanges = ["/orders/1", "/orders/2", "/orders"].enumerated().map { index, path in
            Exchange(
                service: "orders", request: RecordedRequest(method: "GET", host: "o", port: 80, path: path),
                result: .response(RecordedResponse(status: 200)), startedAt: base.addingTimeInterval(Double(index)),
                duration: 0.01)
        }
        try recordings.insert(exchanges, session: nil)
        try recordings.close()

        let table = try await DriftcheckBinary.run(["list", "--store", store], in: directory)
        #expect(table.status == 0)
        #expect(table.output.contains("orders   GET /orders/{id}  2          0       2026-09-21T14:13:20Z"))
        #expect(table.output.contains("1 service, 2 endpoints, 3 exchanges"))

        let json = try await DriftcheckBinary.run(["list", "--store", store, "--json"], in: directory)
        let value = try JSONValue.parse(json.output)
        #expect(
            value.serialized()
                == #"{"version":1,"services":[{"name":"orders","exchanges":3,"endpoints":[{"endpoint":"GET /orders","exchanges":1,"failures":0,"firstSeen":"2026-09-21T14:13:22Z","lastSeen":"2026-09-21T14:13:22Z"},{"endpoint":"GET /orders/{id}","exchanges":2,"failures":0,"firstSeen":"2026-09-21T14:13:20Z","lastSeen":"2026-09-21T14:13:21Z"}]}]}"#
        )
    }

    @Test func demoRecordsTheBuiltInWorkloadAndListsIt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = directory.file("demo.sqlite")
        let result = try await DriftcheckBinary.run(["demo", "--store", store], in: directory)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("GET /orders/{id}"))
        #expect(result.output.contains("POST /orders"))
        let stored = try SQLiteStore(path: store).exchanges()
        #expect(stored.count == 21)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: store))
        #expect(!String(decoding: bytes, as: UTF8.self).contains("demo-secret-token"))
        #expect(stored.contains { $0.response?.status == 401 })
    }
}

@Suite(.serialized) struct RecordShutdownAndTLSTests {
    @Test func exchangesInFlightAtSIGINTFinishAndAreStored() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await TestUpstream.start()
        let (running, store, port) = try await startRecorder(for: upstream, in: directory)
        async let slow = LoopbackHTTPClient.send(ClientRequest("GET", "/slow/1500"), port: port, group: testGroup)
        // SIGINT once the request is surely in flight: the upstream has it and is still answering.
        #expect(await eventually(timeout: 20) { upstream.requestsServed == 1 })
        running.process.signalGroup(SIGINT)
        let response = try await slow
        #expect(response.status == 200)
        #expect(await running.process.wait() == 0)
        let stored = try SQLiteStore(path: store).exchanges()
        #expect(stored.map(\.request.path) == ["/slow/1500"])
        #expect(stored.first?.response?.status == 200)
        await upstream.stop()
    }

    /// A real TLS peer: Python's http.server behind a self-signed certificate made by openssl.
    @Test func httpsUpstreamsNeedTrustOrAnExplicitFlag() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let key = directory.file("key.pem")
        let certificate = directory.file("cert.pem")
        let openssl = try ChildProcess.spawn(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                "-days", "1", "-subj", "/CN=127.0.0.1",
            ], environment: ProcessInfo.processInfo.environment, outputPath: directory.file("openssl.log"))
        #expect(await openssl.wait() == 0)
        let server = try directory.write(
            "tls_server.py",
            """
            import http.server, ssl, sys
            class H(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def do_GET(self):
                    body = b'{"secure":true}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args): pass
            httpd = http.server.HTTPServer(("127.0.0.1", 0), H)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[1], sys.argv[2])
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
            print(httpd.server_address[1], flush=True)
            httpd.serve_forever()
            """)
        let portFile = directory.file("tls-port")
        let python = try ChildProcess.spawn(
            ["python3", server, certificate, key], environment: ProcessInfo.processInfo.environment,
            outputPath: portFile)
        defer { python.signalGroup(SIGKILL) }
        var tlsPort = 0
        for _ in 0..<100 where tlsPort == 0 {
            tlsPort =
                Int(
                    (try? String(contentsOfFile: portFile, encoding: .utf8))?.trimmingCharacters(
                        in: .whitespacesAndNewlines) ?? "") ?? 0
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        #expect(tlsPort > 0)

        for insecure in [false, true] {
            let store = directory.file("tls-\(insecure).sqlite")
            let running = try DriftcheckBinary.start(
                [
                    "record", "--store", store, "--upstream", "secure=https://127.0.0.1:\(tlsPort)", "--listen",
                    "127.0.0.1:0",
                ]
                    + (insecure ? ["--insecure-upstream"] : []), in: directory)
            let port = try await running.listeners(1)[0]
            let response = try await LoopbackHTTPClient.send(ClientRequest("GET", "/x"), port: port, group: testGroup)
            running.process.signalGroup(SIGINT)
            #expect(await running.process.wait() == 0)
            if insecure {
                #expect(response.status == 200)
                #expect(response.text == #"{"secure":true}"#)
                let stored = try SQLiteStore(path: store).exchanges()
                #expect(stored.first?.request.scheme == "https")
                #expect(stored.first?.response?.status == 200)
            } else {
                // A self-signed certificate is not trusted by default.
                #expect(response.status == 502)
                #expect(try SQLiteStore(path: store).exchanges(includeFailures: false).isEmpty)
            }
        }
    }
}

@Suite struct RecordConfigTests {
    @Test func thePolicyFileAddsToRedaction() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await TestUpstream.start()
        let config = try directory.write("driftcheck.yml", "redact:\n  headers: [x-tenant-key]\n  fields: [nickname]\n")
        let store = directory.file("s.sqlite")
        let running = try DriftcheckBinary.start(
            [
                "record", "--store", store, "--config", config, "--upstream", "orders=\(upstream.baseURL)", "--listen",
                "127.0.0.1:0",
            ],
            in: directory)
        let port = try await running.listeners(1)[0]
        _ = try await LoopbackHTTPClient.send(
            .json(
                "POST", "/count", #"{"nickname":"tenant-nick-123"}"#, headers: [("X-Tenant-Key", "tenant-key-456789")]),
            port: port, group: testGroup)
        running.process.signalGroup(SIGINT)
        #expect(await running.process.wait() == 0)
        let stored = try #require(try SQLiteStore(path: store).exchanges().first)
        #expect(normalizedMarkers(stored.request.headers["x-tenant-key"]) == "<redacted>")
        #expect(
            normalizedMarkers(String(decoding: stored.request.body.bytes, as: UTF8.self))
                == #"{"nickname":"<redacted:string>"}"#)
        await upstream.stop()
    }

    @Test func aBadRedactSectionIsExitTwoNamingTheFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write("driftcheck.yml", "redact:\n  fields: [\"$..x\"]\n")
        let result = try await DriftcheckBinary.run(
            ["record", "--store", directory.file("s.sqlite"), "--config", config, "--listen", "127.0.0.1:0"],
            in: directory)
        #expect(result.status == 2)
        #expect(result.output.contains("\(config): redact.fields:"), "\(result.output)")
    }
}

@Suite(.serialized) struct WrappedSignalTests {
    @Test func signalsReachTheWrappedCommandWhoseStatusIsReturned() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let marker = directory.file("started")
        let running = try DriftcheckBinary.start(
            [
                "record", "--store", directory.file("s.sqlite"), "--", "sh", "-c",
                "trap 'exit 42' TERM; touch \(marker); while true; do sleep 0.1; done",
            ], in: directory)
        #expect(await eventually(timeout: 30) { FileManager.default.fileExists(atPath: marker) })
        running.process.signalGroup(SIGTERM)
        #expect(await running.process.wait() == 42, "\(running.output)")
        #expect(running.output.contains("recorded 0 exchanges"))
    }
}

@Suite struct WrappedCommandDescriptorTests {
    /// The wrapped command gets none of the recorder's sockets: holding the listener or a
    /// connection would keep it open after the recorder closed it.
    @Test func theWrappedCommandHoldsNoneOfTheRecordersDescriptors() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let listing = directory.file("fds")
        let result = try await DriftcheckBinary.run(
            [
                "record", "--store", directory.file("s.sqlite"), "--listen", "127.0.0.1:0", "--upstream",
                "orders=http://127.0.0.1:1", "--", "sh", "-c", "ls -l /proc/$$/fd > \(listing)",
            ], in: directory)
        #expect(result.status == 0, "\(result.output)")
        let descriptors = try String(contentsOfFile: listing, encoding: .utf8)
        #expect(descriptors.contains("/dev/null"), "\(descriptors)")
        #expect(!descriptors.contains("socket:") && !descriptors.contains("anon_inode:"), "\(descriptors)")
    }
}

@Suite(.serialized) struct HardKillTests {
    /// SIGKILL under load: the store opens, passes `integrity_check`, and keeps every
    /// committed exchange; at most the last unflushed batch is lost.
    @Test func aKilledRecorderLeavesAConsistentStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let upstream = try await TestUpstream.start()
        let (running, store, port) = try await startRecorder(for: upstream, in: directory)
        let completed = ManagedCounter()
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<20 {
                    group.addTask {
                        for round in 0..<200 {
                            let request = ClientRequest("GET", "/orders/\(worker * 1000 + round + 1)")
                            guard (try? await LoopbackHTTPClient.send(request, port: port, group: testGroup)) != nil
                            else { return }
                            completed.increment()
                        }
                    }
                }
            }
        }
        // Killed once exchanges are committed and load is still running: not after a fixed time,
        // which on a busy machine could come before the first exchange (0 stored, no defect).
        let committed = await eventually(timeout: 120) {
            let rows = (try? runSQLite(store, "SELECT count(*) FROM exchange;")).flatMap { Int($0) } ?? 0
            return rows >= 50 && completed.value >= 50
        }
        #expect(committed, "no exchange was committed under load")
        running.process.signalGroup(SIGKILL)
        _ = await running.process.wait()
        await load.value
        let integrity = try runSQLite(store, "PRAGMA integrity_check;")
        #expect(integrity == "ok")
        let stored = try SQLiteStore(path: store).count()
        #expect(stored > 0)
        // An exchange is stored when the proxy has sent it, which can be just before its
        // client has read it: at most one per worker ahead of the clients' count.
        #expect(stored <= completed.value + 20)
        await upstream.stop()
    }
}

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

/// `driftcheck record` in reverse mode in front of `upstream` as service `orders`.
func startRecorder(for upstream: LoopbackHTTPServer, in directory: TemporaryDirectory) async throws
    -> (DriftcheckBinary.Running, String, Int)
{
    let store = directory.file("recordings.sqlite")
    let running = try DriftcheckBinary.start(
        ["record", "--store", store, "--upstream", "orders=\(upstream.baseURL)", "--listen", "127.0.0.1:0"],
        in: directory)
    return (running, store, try await running.listeners(1)[0])
}

/// A store holding one recorded `GET path` of service `orders`.
func storeWithOneExchange(in directory: TemporaryDirectory, path: String = "/orders/1") throws -> String {
    let store = directory.file("s.sqlite")
    let recordings = try SQLiteStore(path: store)
    try recordings.insert(
        [
            Exchange(
                service: "orders", request: RecordedRequest(method: "GET", host: "o", port: 80, path: path),
                result: .response(RecordedResponse(status: 200)), startedAt: Date(), duration: 0.01)
        ], session: nil)
    try recordings.close()
    return store
}
