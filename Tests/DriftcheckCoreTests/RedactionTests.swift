import Foundation
import Testing

@testable import DriftcheckCore

@Suite struct RedactionTests {
    func exchange(
        headers: [(String, String)] = [], query: String? = nil, body: String = "", contentType: String? = nil,
        responseHeaders: [(String, String)] = [], responseBody: String = ""
    ) -> Exchange {
        var requestHeaders = HeaderFields(headers)
        if let contentType { requestHeaders.add("Content-Type", contentType) }
        return Exchange(
            service: "orders",
            request: RecordedRequest(
                method: "POST", host: "orders", port: 80, path: "/login", query: query, headers: requestHeaders,
                body: CapturedBody(bytes: Data(body.utf8))),
            result: .response(
                RecordedResponse(
                    status: 200, headers: HeaderFields(responseHeaders + [("Content-Type", "application/json")]),
                    body: CapturedBody(bytes: Data(responseBody.utf8)))),
            startedAt: Date(), duration: 0.01)
    }

    @Test func redactsSecretHeadersKeepingTheAuthScheme() {
        let redacted = RedactionPolicy().redact(
            exchange(headers: [
                ("Authorization", "Bearer abc.def.ghi"), ("X-API-Key", "k-123"), ("X-Custom-Token", "t-1"),
                ("Accept", "application/json"), ("WWW-Authenticate", "Bearer realm=x"),
            ]))
        let headers = redacted.request.headers
        // The visible shape survives (scheme, character classes, lengths); the secret does not.
        #expect(headers["authorization"] == "Bearer <redacted~~l3.l3.l3>")
        #expect(headers["x-api-key"] == "<redacted~~l-d3>")
        #expect(headers["x-custom-token"] == "<redacted~~l-d>")
        #expect(headers["accept"] == "application/json")
        #expect(headers["www-authenticate"] == "Bearer realm=x")
    }

    @Test func redactsCookieValuesButKeepsNamesAndAttributes() {
        let redacted = RedactionPolicy().redact(
            exchange(
                headers: [("Cookie", "session=s3cr3t; theme=dark")],
                responseHeaders: [("Set-Cookie", "session=n3w; Path=/; HttpOnly")]))
        #expect(redacted.request.headers["cookie"] == "session=<redacted~~ldl2dl>; theme=<redacted~~l4>")
        #expect(redacted.response?.headers["set-cookie"] == "session=<redacted>; Path=/; HttpOnly")
    }

    @Test func redactsAddedHeaders() {
        var policy = RedactionPolicy()
        policy.addHeader("X-Tenant")
        #expect(
            policy.redact(exchange(headers: [("x-tenant", "acme")])).request.headers["x-tenant"] == "<redacted~~l4>")
    }

    @Test func redactsQueryAndFormParameters() {
        let redacted = RedactionPolicy().redact(
            exchange(
                query: "page=2&access_token=abc&api%5Fkey=k&sig=1", body: "user=ann&password=hunter2",
                contentType: "application/x-www-form-urlencoded"))
        #expect(
            redacted.request.query == "page=2&access_token=<redacted~~l3>&api%5Fkey=<redacted~~l>&sig=<redacted~~d>")
        #expect(String(decoding: redacted.request.body.bytes, as: UTF8.self) == "user=ann&password=<redacted~~l6d>")
    }

    @Test func redactsJSONFieldsKeepingTheirType() throws {
        var policy = RedactionPolicy()
        try policy.addField("$.user.ssn")
        try policy.addField("pin")
        let redacted = policy.redact(
            exchange(
                body:
                    #"{"user":{"name":"ann","ssn":"123-45-6789","Password":"x","pin":1234},"refresh_token":null,"items":[{"api_key":true}]}"#,
                contentType: "application/json",
                responseBody: #"{"access_token":"eyJ","expires_in":3600}"#))
        let body = try JSONValue.parse(redacted.request.body.bytes)
        #expect(
            body.serialized()
                == #"{"user":{"name":"ann","ssn":"<redacted:string~~d3-d2-d4>","Password":"<redacted:string~~l>","pin":"<redacted:integer>"},"refresh_token":"<redacted:null>","items":[{"api_key":"<redacted:boolean>"}]}"#
        )
        #expect(
            String(decoding: redacted.response!.body.bytes, as: UTF8.self)
                == #"{"access_token":"<redacted:string~~l2u>","expires_in":3600}"#)
    }

    @Test func redactsSecretsInTruncatedJSON() {
        var original = exchange(
            body: #"{"name":"ann","password":"hunter2","bio":"long tex"#, contentType: "application/json")
        original.request.body.size = 10_000
        let redacted = RedactionPolicy().redact(original)
        let text = String(decoding: redacted.request.body.bytes, as: UTF8.self)
        #expect(!text.contains("hunter2"))
        #expect(text.hasPrefix(#"{"name":"ann","password":"<redacted:string>""#))
        #expect(redacted.request.body.isTruncated)
    }

    @Test func leavesOrdinaryBodiesAlone() {
        let original = exchange(body: "plain text password=visible", contentType: "text/plain")
        #expect(RedactionPolicy().redact(original).request.body == original.request.body)
    }

    @Test func removesARedactedValueWhereverElseItAppears() {
        let redacted = RedactionPolicy().redact(
            exchange(
                headers: [("Authorization", "Bearer tok-0123456789")], query: "api_key=key-abcdef&lang=en",
                responseHeaders: [("X-Echo", "you sent tok-0123456789")],
                responseBody:
                    #"{"headers":{"Authorization":"Bearer tok-0123456789"},"url":"/login?api_key=key-abcdef&lang=en"}"#
            ))
        let body = String(decoding: redacted.response!.body.bytes, as: UTF8.self)
        #expect(!body.contains("tok-0123456789"))
        #expect(!body.contains("key-abcdef"))
        #expect(body.contains("lang=en"))
        #expect(redacted.response?.headers["x-echo"] == "you sent <redacted>")
    }

    @Test func redactingTwiceChangesNothing() {
        let once = RedactionPolicy().redact(
            exchange(
                headers: [("Authorization", "Bearer tok-0123456789"), ("Cookie", "sid=abcdef123")],
                query: "token=abcdefgh", body: #"{"password":"hunter22","pin":"<redacted:integer>","n":{"token":5}}"#,
                contentType: "application/json"))
        let twice = RedactionPolicy().redact(once)
        #expect(twice == once)
        #expect(String(decoding: twice.request.body.bytes, as: UTF8.self).contains(#""token":"<redacted:integer>""#))
        #expect(twice.request.headers["authorization"] == "Bearer <redacted~tok-~d10>")
    }

    @Test func scrubbingReplacesEveryOccurrenceAndOnlyThose() {
        let m = RedactionPolicy.marker
        let cases: [(String, String)] = [
            ("abcdefgh", m), ("xabcdefghy", "x\(m)y"), ("abcdefghabcdefgh", m + m),
            ("abcdefg abcdefgh", "abcdefg \(m)"), ("aabcdefgh-abcdefgha", "a\(m)-\(m)a"), ("abc", "abc"), ("", ""),
        ]
        for (text, expected) in cases {
            #expect(RedactionPolicy.scrub(text, ["abcdefgh"]) == expected, "\(text)")
            #expect(RedactionPolicy.scrub(Data(text.utf8), ["abcdefgh"]) == Data(expected.utf8), "\(text)")
        }
        #expect(RedactionPolicy.replacingAll(in: UnsafeRawBufferPointer(start: nil, count: 0), "abcdefgh") == nil)
        // Longer secrets first, so a secret containing another is replaced whole.
        #expect(RedactionPolicy.scrub("token=abcdefgh12345", ["abcdefgh12345", "abcdefgh"]) == "token=\(m)")
    }

    @Test func theQuickScanNeverHidesAFieldThatParsingWouldRedact() throws {
        var policy = RedactionPolicy()
        try policy.addField("x-tenant-pin")
        for body in [
            #"{"X_TENANT_PIN":1234}"#, #"{"a":{"Access-Token":"abcdefgh"}}"#, #"{"CVV":"123"}"#,
            #"{"a": 1, "b" :{"Pass_Word"  :  "hunter22"}}"#, "{\"note\":\"x: y\",\n\"secret\"\t:\"s3cr3t99\"}",
            #"{"pass\u0077ord":"hunter22"}"#, #"[{"a":[1,2,{"token":"t0k3n-value"}]}]"#,
        ] {
            let data = Data(body.utf8)
            #expect(policy.mayNameAField(data), "\(body)")
            #expect(policy.redact(exchange(body: body, contentType: "application/json")).request.body.bytes != data)
        }
        #expect(!policy.mayNameAField(Data(#"{"id":1,"status":"paid","total":9.5}"#.utf8)))
        // Colons inside values and keys that only contain a field's letters are not names.
        #expect(
            !policy.mayNameAField(Data(#"{"note":"token: see password","url":"http://x:1/secret","tokens":[]}"#.utf8)))
        #expect(!policy.mayNameAField(Data(String(repeating: "x", count: 1 << 20).utf8)))
    }

    @Test func aRedactedBodyIsNotMistakenForATruncatedOne() {
        // Found by the secrets-everywhere test: shorter markers made complete bodies look cut.
        let redacted = RedactionPolicy().redact(
            exchange(
                headers: [("Authorization", "Bearer a-very-long-token-value-0123456789")],
                responseBody:
                    #"{"echo":"Bearer a-very-long-token-value-0123456789","password":"a-long-password-value"}"#))
        #expect(redacted.response?.body.isTruncated == false)
        #expect(redacted.request.body.isTruncated == false)
    }

    @Test func shapesKeepKnownPrefixesAndStandInsSatisfyTheRecordedPattern() throws {
        let cases: [(String, String, String)] = [
            ("sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_~m24", "sk_test_[A-Za-z0-9]{24}"),
            ("s-12345678", "s-~d8", "s-[0-9]+"),
            ("abc-12345", "~l3-d5", "[a-z]+-[0-9]+"),
            ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_~m36", "ghp_[A-Za-z0-9]{36}"),
            ("3f2504e04f8911d39a0c0305e82c3301", "~a32", "[0-9a-f]{32}"),
            ("eyJhbGciOi.eyJzdWIi.SflKxwRJSM", "~m10.m8.m10", "[^.]+\\.[^.]+\\.[^.]+"),
        ]
        for (value, shape, pattern) in cases {
            #expect(RedactionShape.of(value) == shape, "\(value)")
            let standIn = RedactionShape.standIn(Substring(shape))
            #expect(standIn.count == value.count)
            #expect(standIn.range(of: "^\(pattern)$", options: .regularExpression) != nil, "\(standIn) vs \(pattern)")
            #expect(standIn != value)
        }
    }

    @Test func standInsReplaceMarkersInEveryPartOfAReplayedRequest() throws {
        let redacted = RedactionPolicy().redact(
            exchange(
                headers: [
                    ("Authorization", "Bearer sk_live_abcdef123456"), ("Cookie", "session=s-12345678; theme=dark"),
                ],
                query: "api_key=sk_test_ABCD1234&page=2", body: #"{"token":"tok_9f8e7d6c","pin":1234,"name":"ann"}"#,
                contentType: "application/json"))
        let replayed = StandIns.request(redacted.request)
        #expect(replayed.headers["authorization"] == "Bearer sk_live_aaaaaa111111")
        #expect(replayed.headers["cookie"] == "session=s-11111111; theme=aaaa")
        #expect(replayed.query == "api_key=sk_test_AAAA1111&page=2")
        let body = try JSONValue.parse(replayed.body.bytes)
        #expect(body["token"] == .string("tok_1a1a1a1a"))
        #expect(body["name"] == .string("ann"))
        #expect(
            StandIns.redactedParts(redacted.request) == [
                "header Authorization", "cookie session", "cookie theme", "query api_key", "body",
            ])
        // Nothing of a secret survives in the stand-ins.
        let text = "\(replayed.headers) \(replayed.query ?? "") \(String(decoding: replayed.body.bytes, as: UTF8.self))"
        for secret in ["abcdef123456", "12345678", "ABCD1234", "9f8e7d6c"] { #expect(!text.contains(secret)) }
    }
}
