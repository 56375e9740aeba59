import DriftcheckCore
import DriftcheckTestSupport
import Foundation
import Testing

@testable import DriftcheckMocks

/// Writes mappings into a temporary `SERVICE/mappings/` and loads the engine over them.
func engine(_ mappings: [String], files: [String: String] = [:]) throws -> (WireMockEngine, TemporaryDirectory) {
    let directory = try TemporaryDirectory()
    try FileManager.default.createDirectory(atPath: directory.file("mappings"), withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: directory.file("__files"), withIntermediateDirectories: true)
    for (index, mapping) in mappings.enumerated() {
        _ = try directory.write("mappings/\(String(format: "%02d", index)).json", mapping)
    }
    for (name, content) in files {
        let path = directory.file("__files/\(name)")
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = try directory.write("__files/\(name)", content)
    }
    return (try WireMockEngine(directory: directory.path, service: "orders"), directory)
}

func request(
    _ method: String, _ target: String, headers: [(String, String)] = [], body: String = ""
) -> RecordedRequest {
    let parts = target.split(separator: "?", maxSplits: 1).map(String.init)
    return RecordedRequest(
        method: method, host: "orders", port: 80, path: parts[0], query: parts.count > 1 ? parts[1] : nil,
        headers: HeaderFields(headers), body: CapturedBody(bytes: Data(body.utf8)))
}

func status(_ answer: MockAnswer) -> Int? {
    if case .response(let response) = answer { return response.status }
    return nil
}

func text(_ answer: MockAnswer) -> String? {
    if case .response(let response) = answer { return String(decoding: response.body.bytes, as: UTF8.self) }
    return nil
}

@Suite struct WireMockEngineTests {
    @Test func matchesURLsTheWaysWireMockDoes() throws {
        let (engine, directory) = try engine([
            #"{"request":{"method":"GET","url":"/exact?a=1"},"response":{"status":201}}"#,
            #"{"request":{"method":"GET","urlPath":"/path"},"response":{"status":202}}"#,
            #"{"request":{"method":"GET","urlPattern":"/pattern/[0-9]+\\?x=.*"},"response":{"status":203}}"#,
            #"{"request":{"method":"GET","urlPathPattern":"/items/[a-z]+"},"response":{"status":204}}"#,
            #"{"request":{"method":"ANY","urlPathTemplate":"/orders/{id}/lines/{line}","pathParameters":{"line":{"matches":"[0-9]+"}}},"response":{"status":205}}"#,
        ])
        defer { directory.remove() }
        #expect(status(engine.respond(to: request("GET", "/exact?a=1"))) == 201)
        #expect(status(engine.respond(to: request("GET", "/exact?a=2"))) == nil)
        #expect(status(engine.respond(to: request("GET", "/path?anything=1"))) == 202)
        #expect(status(engine.respond(to: request("GET", "/pattern/42?x=y"))) == 203)
        #expect(status(engine.respond(to: request("GET", "/pattern/42"))) == nil)
        #expect(status(engine.respond(to: request("GET", "/items/abc"))) == 204)
        #expect(status(engine.respond(to: request("GET", "/items/ab1"))) == nil)
        #expect(status(engine.respond(to: request("DELETE", "/orders/7/lines/3"))) == 205)
        #expect(status(engine.respond(to: request("DELETE", "/orders/7/lines/x"))) == nil)
        #expect(status(engine.respond(to: request("POST", "/path"))) == nil)
    }

    @Test func matchesQueryHeadersAndCookies() throws {
        let (engine, directory) = try engine([
            #"""
            {"request":{"method":"GET","urlPath":"/search",
              "queryParameters":{"q":{"equalTo":"shoes"},"page":{"matches":"[0-9]+"},"debug":{"absent":true}},
              "headers":{"Accept":{"contains":"json"},"X-Tenant":{"equalTo":"ACME","caseInsensitive":true},"X-Bad":{"doesNotMatch":"evil.*"}},
              "cookies":{"session":{"matches":"s-.*"}}},
             "response":{"status":200}}
            """#
        ])
        defer { directory.remove() }
        // Like WireMock, a missing header fails positive patterns and passes negative ones.
        #expect(
            status(
                engine.respond(
                    to: request(
                        "GET", "/search?q=shoes&page=2",
                        headers: [("Accept", "application/json"), ("X-Tenant", "acme"), ("Cookie", "session=s-1")])))
                == 200)
        #expect(
            status(
                engine.respond(
                    to: request(
                        "GET", "/search?q=shoes&page=2",
                        headers: [("X-Tenant", "acme"), ("X-Bad", "fine"), ("Cookie", "session=s-1")]))) == nil)
        let good = [
            ("Accept", "application/json"), ("X-Tenant", "acme"), ("X-Bad", "fine"), ("Cookie", "theme=x; session=s-1"),
        ]
        #expect(status(engine.respond(to: request("GET", "/search?q=shoes&page=2", headers: good))) == 200)
        #expect(status(engine.respond(to: request("GET", "/search?q=shoes&page=2&debug=1", headers: good))) == nil)
        #expect(status(engine.respond(to: request("GET", "/search?q=boots&page=2", headers: good))) == nil)
        #expect(
            status(engine.respond(to: request("GET", "/search?q=shoes&page=2", headers: Array(good.dropLast())))) == nil
        )
        #expect(
            status(
                engine.respond(
                    to: request(
                        "GET", "/search?q=shoes&page=2", headers: good.map { $0.0 == "X-Bad" ? ("X-Bad", "evil!") : $0 }
                    ))) == nil)
        #expect(status(engine.respond(to: request("GET", "/search?q=sh%6Fes&page=2", headers: good))) == 200)
    }

    @Test func matchesBodies() throws {
        let (engine, directory) = try engine([
            #"{"request":{"method":"POST","url":"/json","bodyPatterns":[{"equalToJson":{"a":1,"tags":["x","y"]},"ignoreArrayOrder":true,"ignoreExtraElements":true}]},"response":{"status":201}}"#,
            #"{"request":{"method":"POST","url":"/strict","bodyPatterns":[{"equalToJson":"{\"a\":1}"}]},"response":{"status":202}}"#,
            #"{"request":{"method":"POST","url":"/path","bodyPatterns":[{"matchesJsonPath":"$.items[?(@.qty > 1)]"},{"matchesJsonPath":{"expression":"$.customer.id","equalTo":"7"}}]},"response":{"status":203}}"#,
            #"{"request":{"method":"POST","url":"/text","bodyPatterns":[{"contains":"hello"},{"matches":".*world.*"}]},"response":{"status":204}}"#,
        ])
        defer { directory.remove() }
        #expect(
            status(engine.respond(to: request("POST", "/json", body: #"{"tags":["y","x"],"a":1.0,"extra":true}"#)))
                == 201)
        #expect(status(engine.respond(to: request("POST", "/json", body: #"{"tags":["y"],"a":1}"#))) == nil)
        #expect(status(engine.respond(to: request("POST", "/strict", body: #"{"a":1}"#))) == 202)
        #expect(status(engine.respond(to: request("POST", "/strict", body: #"{"a":1,"b":2}"#))) == nil)
        #expect(
            status(
                engine.respond(
                    to: request("POST", "/path", body: #"{"items":[{"qty":1},{"qty":3}],"customer":{"id":7}}"#))) == 203
        )
        #expect(
            status(engine.respond(to: request("POST", "/path", body: #"{"items":[{"qty":1}],"customer":{"id":7}}"#)))
                == nil)
        #expect(status(engine.respond(to: request("POST", "/text", body: "hello world"))) == 204)
        #expect(status(engine.respond(to: request("POST", "/text", body: "hello there"))) == nil)
    }

    @Test func priorityAndRecencyPickTheStub() throws {
        let (engine, directory) = try engine([
            #"{"request":{"method":"GET","urlPathPattern":"/p/.*"},"response":{"status":500}}"#,
            #"{"priority":1,"request":{"method":"GET","urlPath":"/p/special"},"response":{"status":201}}"#,
            #"{"request":{"method":"GET","urlPathPattern":"/p/.*"},"response":{"status":202}}"#,
        ])
        defer { directory.remove() }
        #expect(status(engine.respond(to: request("GET", "/p/special"))) == 201)
        // Equal priority: the stub added last wins.
        #expect(status(engine.respond(to: request("GET", "/p/other"))) == 202)
        #expect(engine.unusedStubs.map(\.index) == [0])
    }

    @Test func scenariosMoveBetweenStates() throws {
        let (engine, directory) = try engine([
            #"{"scenarioName":"cart","requiredScenarioState":"Started","newScenarioState":"filled","request":{"method":"POST","url":"/cart"},"response":{"status":201}}"#,
            #"{"scenarioName":"cart","requiredScenarioState":"Started","request":{"method":"GET","url":"/cart"},"response":{"status":200,"jsonBody":{"items":[]}}}"#,
            #"{"scenarioName":"cart","requiredScenarioState":"filled","request":{"method":"GET","url":"/cart"},"response":{"status":200,"jsonBody":{"items":[1]}}}"#,
        ])
        defer { directory.remove() }
        #expect(text(engine.respond(to: request("GET", "/cart"))) == #"{"items":[]}"#)
        #expect(status(engine.respond(to: request("POST", "/cart"))) == 201)
        #expect(text(engine.respond(to: request("GET", "/cart"))) == #"{"items":[1]}"#)
    }

    @Test func buildsResponsesFromEveryBodySource() throws {
        let (engine, directory) = try engine(
            [
                #"{"request":{"url":"/body"},"response":{"status":200,"body":"plain","headers":{"Content-Type":"text/plain","X-Multi":["a","b"]}}}"#,
                #"{"request":{"url":"/json"},"response":{"jsonBody":{"a":[1,2]}}}"#,
                #"{"request":{"url":"/b64"},"response":{"base64Body":"aGVsbG8="}}"#,
                #"{"request":{"url":"/file"},"response":{"bodyFileName":"data/order.json"}}"#,
                #"{"request":{"url":"/escape"},"response":{"bodyFileName":"../mappings/00.json"}}"#,
            ], files: ["data/order.json": #"{"id":1}"#])
        defer { directory.remove() }
        guard case .response(let plain) = engine.respond(to: request("GET", "/body")) else {
            Issue.record("no response")
            return
        }
        #expect(plain.headers.values("x-multi") == ["a", "b"])
        #expect(text(engine.respond(to: request("GET", "/json"))) == #"{"a":[1,2]}"#)
        #expect(text(engine.respond(to: request("GET", "/b64"))) == "hello")
        #expect(text(engine.respond(to: request("GET", "/file"))) == #"{"id":1}"#)
        #expect(status(engine.respond(to: request("GET", "/escape"))) == 500)
        #expect(engine.engineDiagnostics.contains { $0.message.contains("points outside __files/") })
    }

    @Test func refusesSymlinksOutOfFiles() throws {
        let (engine, directory) = try engine([#"{"request":{"url":"/link"},"response":{"bodyFileName":"secret.txt"}}"#])
        defer { directory.remove() }
        let outside = try directory.write("outside-secret.txt", "top secret")
        try FileManager.default.createSymbolicLink(
            atPath: directory.file("__files/secret.txt"), withDestinationPath: outside)
        #expect(status(engine.respond(to: request("GET", "/link"))) == 500)
        #expect(text(engine.respond(to: request("GET", "/link")))?.contains("top secret") == false)
    }

    @Test func rendersResponseTemplates() throws {
        let (engine, directory) = try engine([
            #"""
            {"request":{"urlPathPattern":"/orders/.*"},
             "response":{"transformers":["response-template"],"headers":{"Location":"/orders/{{request.pathSegments.[1]}}"},
               "body":"{\"id\":{{request.pathSegments.[1]}},\"q\":\"{{request.query.q}}\",\"h\":\"{{request.headers.X-Id}}\",\"n\":\"{{jsonPath request.body '$.name'}}\",\"m\":\"{{request.method}}\",\"raw\":\"{{{request.query.raw}}}\",\"esc\":\"{{request.query.raw}}\",\"x\":\"{{#if true}}y{{/if}}\",\"f\":\"{{capitalize 'a'}}\"}"}}
            """#
        ])
        defer { directory.remove() }
        let answer = engine.respond(
            to: request("POST", "/orders/42?q=red&raw=a%3Cb", headers: [("X-Id", "abc")], body: #"{"name":"ann"}"#))
        #expect(
            text(answer)
                == #"{"id":42,"q":"red","h":"abc","n":"ann","m":"POST","raw":"a<b","esc":"a&lt;b","x":"y","f":""}"#)
        if case .response(let response) = answer { #expect(response.headers["location"] == "/orders/42") }
        let messages = engine.engineDiagnostics.map(\.message)
        #expect(messages.contains { $0.contains("helper 'capitalize' is not supported") })
        #expect(messages.contains { $0.contains("block helper 'if'") })
    }

    @Test func badMappingsAreConfigurationErrorsNamingTheFile() throws {
        for (mapping, message) in [
            ("{not json", "invalid JSON"), (#"{"response":{}}"#, "needs a \"request\" object"),
            (#"{"request":{"urlPattern":"(["}}"#, "invalid URL regular expression"),
        ] {
            #expect {
                _ = try engine([mapping])
            } throws: { error in
                guard let error = error as? MockConfigurationError else { return false }
                return error.description.contains("mappings/00.json") && error.description.contains(message)
            }
        }
    }

    @Test func aMappingsFileMayHoldSeveralMappings() throws {
        let (engine, directory) = try engine([
            #"{"mappings":[{"request":{"url":"/a"},"response":{"status":201}},{"request":{"url":"/b"},"response":{"status":202}}]}"#
        ])
        defer { directory.remove() }
        #expect(status(engine.respond(to: request("GET", "/a"))) == 201)
        #expect(status(engine.respond(to: request("GET", "/b"))) == 202)
    }

    @Test func mappingsInSubFoldersAndWithCommentsLoad() throws {
        let (engine, directory) = try engine([])
        defer { directory.remove() }
        try FileManager.default.createDirectory(
            atPath: directory.file("mappings/orders/v2"), withIntermediateDirectories: true)
        _ = try directory.write(
            "mappings/orders/v2/get.json",
            """
            // exported by hand, see ORD-12
            { "request": { "method": "GET", "url": "/orders/1" /* the one order */ },
              "response": { "status": 200, "body": "a // not a comment /* nor this */" } }
            """)
        let reloaded = try WireMockEngine(directory: directory.path, service: "orders")
        #expect(text(reloaded.respond(to: request("GET", "/orders/1"))) == "a // not a comment /* nor this */")
        _ = engine
    }

    @Test func aMatcherTheEngineLacksMakesItsRequestsUncomparedNotTheDirectoryRefused() throws {
        let (engine, directory) = try engine([
            #"{"request":{"method":"POST","url":"/xml","bodyPatterns":[{"equalToXmlish":"<a/>"}]},"response":{"status":201}}"#,
            #"{"request":{"method":"GET","url":"/custom","customMatcher":{"name":"tenant"}},"response":{"status":200}}"#,
            #"{"request":{"method":"GET","url":"/plain"},"response":{"status":200,"body":"plain"}}"#,
        ])
        defer { directory.remove() }
        #expect(
            engine.engineDiagnostics.map(\.message).contains {
                $0.contains("00.json: uses bodyPatterns[0] (equalToXmlish)")
            })
        #expect(engine.engineDiagnostics.map(\.message).contains { $0.contains("01.json: uses customMatcher") })
        guard case .cannotEvaluate(let reason) = engine.respond(to: request("POST", "/xml", body: "<a/>")) else {
            Issue.record("an unsupported matcher was evaluated")
            return
        }
        #expect(reason.contains("00.json uses bodyPatterns[0] (equalToXmlish)"))
        if case .cannotEvaluate = engine.respond(to: request("GET", "/custom")) {
        } else {
            Issue.record("customMatcher evaluated")
        }
        #expect(text(engine.respond(to: request("GET", "/plain"))) == "plain")
        // A request whose URL no such mapping matches is judged as usual.
        if case .unmatched = engine.respond(to: request("POST", "/other")) {} else { Issue.record("/other matched") }
        #expect(engine.unusedStubs.isEmpty)
        // Not compared is not drift: no finding, a diagnostic with the count.
        let exchange = Exchange(
            id: 1, service: "orders", request: request("POST", "/xml", body: "<a/>"),
            result: .response(RecordedResponse(status: 201)), startedAt: Date(), duration: 0)
        let result = Differ().compare(
            service: "orders",
            replayed: [ReplayedExchange(exchange: exchange, answer: engine.respond(to: exchange.request))])
        #expect(result.findings.isEmpty)
        #expect(result.compared == 0)
        #expect(
            result.diagnostics.map(\.message) == [
                "1 exchange not compared: 00.json uses bodyPatterns[0] (equalToXmlish), which driftcheck's WireMock engine cannot evaluate"
            ])
    }

    @Test func basicAuthAndNotMatchers() throws {
        let (engine, directory) = try engine([
            #"{"request":{"url":"/admin","basicAuthCredentials":{"username":"ann","password":"s3cret"}},"response":{"status":200}}"#,
            #"{"request":{"url":"/list","headers":{"X-Env":{"not":{"equalTo":"prod"}}}},"response":{"status":200}}"#,
        ])
        defer { directory.remove() }
        let good = "Basic " + Data("ann:s3cret".utf8).base64EncodedString()
        let bad = "Basic " + Data("ann:wrong".utf8).base64EncodedString()
        #expect(status(engine.respond(to: request("GET", "/admin", headers: [("Authorization", good)]))) == 200)
        #expect(status(engine.respond(to: request("GET", "/admin", headers: [("Authorization", bad)]))) == nil)
        #expect(status(engine.respond(to: request("GET", "/admin"))) == nil)
        #expect(status(engine.respond(to: request("GET", "/list", headers: [("X-Env", "dev")]))) == 200)
        #expect(status(engine.respond(to: request("GET", "/list", headers: [("X-Env", "prod")]))) == nil)
    }

    @Test(arguments: [
        ("$[?(@.draft == true)]", #"{"draft":true,"title":"x"}"#, true),
        ("$[?(@.draft == true)]", #"{"draft":false}"#, false),
        ("$.[?(@.kind == 'note')]", #"{"kind":"note"}"#, true),
        ("$.items[?(@.sku =~ /A-.*/)]", #"{"items":[{"sku":"B-1"},{"sku":"A-7"}]}"#, true),
        ("$.items[?(@.sku =~ /a-.*/i)]", #"{"items":[{"sku":"A-7"}]}"#, true),
        ("$.items[?(@.sku =~ /A-.*/)]", #"{"items":[{"sku":"B-1"}]}"#, false),
        ("$.items[?(@.qty > 1 && @.sku == 'A')]", #"{"items":[{"sku":"A","qty":2}]}"#, true),
        ("$.items[?(@.qty > 1 && @.sku == 'A')]", #"{"items":[{"sku":"A","qty":1},{"sku":"B","qty":5}]}"#, false),
        ("$.items[?(@.sku == 'X' || @.qty == 5)]", #"{"items":[{"sku":"B","qty":5}]}"#, true),
        ("$.items[?(@.sku in ['A','C'])]", #"{"items":[{"sku":"C"}]}"#, true),
        ("$.items[?(@.sku nin ['A','C'])]", #"{"items":[{"sku":"C"}]}"#, false),
        ("$.items[?(@.tags size 2)]", #"{"items":[{"tags":["a","b"]}]}"#, true),
        ("$..name", #"{"a":{"b":{"name":"deep"}}}"#, true),
        ("$.items[1:]", #"{"items":[1]}"#, false),
        ("$.items[1:]", #"{"items":[1,2]}"#, true),
    ])
    func jsonPathDialect(expression: String, body: String, matches: Bool) throws {
        let mapping =
            #"{"request":{"method":"POST","url":"/q","bodyPatterns":[{"matchesJsonPath":"\#(expression)"}]},"response":{"status":200}}"#
        let (engine, directory) = try engine([mapping])
        defer { directory.remove() }
        #expect(
            (status(engine.respond(to: request("POST", "/q", body: body))) == 200) == matches,
            "\(expression) on \(body)")
    }

    @Test(arguments: [
        (
            #"{"equalToXml":"<order id=\"7\"><sku>A</sku><qty>2</qty></order>"}"#,
            "<order id='7'>\n  <qty>2</qty>\n  <sku>A</sku>\n</order>", true
        ),
        (#"{"equalToXml":"<order id=\"7\"><sku>A</sku></order>"}"#, "<order id='8'><sku>A</sku></order>", false),
        (#"{"equalToXml":"<order><sku>A</sku></order>"}"#, "<order><sku>A</sku><extra/></order>", false),
        (
            #"{"equalToXml":"<a:order xmlns:a=\"urn:shop\"><a:sku>A</a:sku></a:order>"}"#,
            "<b:order xmlns:b='urn:shop'><b:sku>A</b:sku></b:order>", true
        ),
        (#"{"equalToXml":"<order xmlns=\"urn:shop\"/>"}"#, "<order xmlns='urn:other'/>", false),
        (#"{"equalToXml":"<order xmlns=\"urn:shop\"/>"}"#, "<s:order xmlns:s='urn:shop'/>", false),
        (
            #"{"equalToXml":"<order><id>${xmlunit.ignore}</id><n>${xmlunit.isNumber}</n></order>","enablePlaceholders":true}"#,
            "<order><id>x-1</id><n>12.5</n></order>", true
        ),
        (
            #"{"equalToXml":"<order><n>${xmlunit.isNumber}</n></order>","enablePlaceholders":true}"#,
            "<order><n>twelve</n></order>", false
        ),
        (#"{"equalToXml":"<order><n>${xmlunit.isNumber}</n></order>"}"#, "<order><n>12</n></order>", false),
        (#"{"matchesXPath":"/order[@id='7']/sku"}"#, "<order id='7'><sku>A</sku></order>", true),
        (#"{"matchesXPath":"/order[@id='7']/sku"}"#, "<order id='8'><sku>A</sku></order>", false),
        (#"{"matchesXPath":{"expression":"//sku/text()","equalTo":"A"}}"#, "<order><sku>A</sku></order>", true),
        (#"{"matchesXPath":{"expression":"//sku/text()","equalTo":"A"}}"#, "<order><sku>B</sku></order>", false),
        (
            #"{"matchesXPath":"//s:sku","xPathNamespaces":{"s":"urn:shop"}}"#,
            "<order xmlns='urn:shop'><sku>A</sku></order>", true
        ),
        (#"{"matchesXPath":"//sku"}"#, "not xml at all", false),
    ])
    func xmlMatchers(pattern: String, body: String, matches: Bool) throws {
        let mapping =
            #"{"request":{"method":"POST","url":"/x","bodyPatterns":[\#(pattern)]},"response":{"status":200}}"#
        let (engine, directory) = try engine([mapping])
        defer { directory.remove() }
        #expect(
            (status(engine.respond(to: request("POST", "/x", body: body))) == 200) == matches, "\(pattern) on \(body)")
    }

    /// The engine's clock is injected: 2026-11-30T12:00:00Z.
    static let now = Date(timeIntervalSince1970: 1_796_040_000)

    @Test(arguments: [
        (#"{"before":"2021-06-01T00:00:00Z"}"#, "2021-05-31T23:59:59Z", true),
        (#"{"before":"2021-06-01T00:00:00Z"}"#, "2021-06-01T00:00:01Z", false),
        // A local expected value compares with the request's wall clock, its offset dropped.
        (#"{"after":"2021-06-01"}"#, "2021-06-01T00:00:01+01:00", true),
        (#"{"after":"2021-06-01T00:00:00Z"}"#, "2021-06-01T00:00:01+01:00", false),
        (#"{"after":"2021-06-01"}"#, "Tue, 01 Jun 2021 15:16:17 GMT", true),
        (#"{"equalToDateTime":"2021-06-24T00:00:00Z","actualFormat":"dd/MM/yyyy"}"#, "24/06/2021", true),
        (#"{"equalToDateTime":"2021-06-24T00:00:00Z","actualFormat":"dd/MM/yyyy"}"#, "25/06/2021", false),
        (#"{"after":"now -1000 days"}"#, "2026-01-01T00:00:00Z", true),
        (#"{"after":"now +3 days"}"#, "2026-12-02T00:00:00Z", false),
        (#"{"before":"now","expectedOffset":3,"expectedOffsetUnit":"days"}"#, "2026-12-03T11:00:00Z", true),
        (#"{"before":"now","truncateExpected":"first day of month"}"#, "2026-11-02T00:00:00Z", false),
        (#"{"before":"now","truncateExpected":"first day of month"}"#, "2026-10-31T23:00:00Z", true),
        (
            #"{"equalToDateTime":"2026-11-01T00:00:00Z","truncateActual":"first day of month"}"#,
            "2026-11-17T08:09:10Z", true
        ),
        (
            #"{"equalToDateTime":"2026-11-30T00:00:00Z","truncateActual":"last day of month"}"#, "2026-11-17T08:09:10Z",
            true
        ),
        (
            #"{"equalToDateTime":"2027-01-01T00:00:00Z","truncateActual":"first day of next year"}"#,
            "2026-05-05T00:00:00Z", true
        ),
        (#"{"before":"2021-06-01T00:00:00Z"}"#, "not a date", false),
    ])
    func dateTimeMatchers(pattern: String, value: String, matches: Bool) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("mappings"), withIntermediateDirectories: true)
        _ = try directory.write(
            "mappings/date.json",
            #"{"request":{"url":"/d","headers":{"X-Date":\#(pattern)}},"response":{"status":200}}"#)
        let engine = try WireMockEngine(directory: directory.path, service: "orders", now: Self.now)
        #expect(
            (status(engine.respond(to: request("GET", "/d", headers: [("X-Date", value)]))) == 200) == matches,
            "\(pattern) on \(value)")
    }

    @Test func equalPriorityTiesAcrossFilesAreNamed() throws {
        let (engine, directory) = try engine([
            #"{"request":{"urlPath":"/tie"},"response":{"status":200,"body":"first"}}"#,
            #"{"request":{"urlPathPattern":"/t.*"},"response":{"status":200,"body":"second"}}"#,
        ])
        defer { directory.remove() }
        #expect(text(engine.respond(to: request("GET", "/tie"))) == "second")
        #expect(engine.engineDiagnostics.contains { $0.message.contains("both match GET /tie at priority 5") })
    }

    @Test func theEngineNeedsNoDiskOfItsOwn() throws {
        let engine = try WireMockEngine(
            mappings: [
                .init(
                    path: "a.json", data: Data(#"{"request":{"url":"/a"},"response":{"bodyFileName":"a.txt"}}"#.utf8)),
                .init(
                    path: "b.json", data: Data(#"{"request":{"url":"/b"},"response":{"bodyFileName":"gone.txt"}}"#.utf8)
                ),
            ],
            files: { name in
                name == "a.txt" ? .success(Data("from memory".utf8)) : .failure(BodyFileRefused(reason: "no \(name)"))
            },
            service: "orders")
        #expect(text(engine.respond(to: request("GET", "/a"))) == "from memory")
        _ = engine.respond(to: request("GET", "/b"))
        #expect(
            engine.engineDiagnostics.contains { $0.message.contains("b.json") && $0.message.contains("no gone.txt") })
    }
}
