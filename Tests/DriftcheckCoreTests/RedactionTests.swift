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
        #expect(headers["authorization"] == "Bearer <redacted>")
        #expect(headers["x-api-key"] == "<redacted>")
        #expect(headers["x-custom-token"] == "<redacted>")
        #expect(headers["accept"] == "application/json")
        #expect(headers["www-authenticate"] == "Bearer realm=x")
    }

    @Test func redactsCookieValuesButKeepsNamesAndAttributes() {
        let redacted = RedactionPolicy().redact(
            exchange(
                headers: [("Cookie", "session=s3cr3t; theme=dark")],
                responseHeaders: [("Set-Cookie", "session=n3w; Path=/; HttpOnly")]))
        #expect(redacted.request.headers["cookie"] == "session=<redacted>; theme=<redacted>")
        #expect(redacted.response?.headers["set-cookie"] == "session=<redacted>; Path=/; HttpOnly")
    }

    @Test func redactsAddedHeaders() {
        var policy = RedactionPolicy()
        policy.addHeader("X-Tenant")
        #expect(policy.redact(exchange(headers: [("x-tenant", "acme")])).request.headers["x-tenant"] == "<redacted>")
    }

    @Test func redactsQueryAndFormParameters() {
        let redacted = RedactionPolicy().redact(
            exchange(
                query: "page=2&access_token=abc&api%5Fkey=k&sig=1", body: "user=ann&password=hunter2",
                contentType: "application/x-www-form-urlencoded"))
        #expect(redacted.request.query == "page=2&access_token=<redacted>&api%5Fkey=<redacted>&sig=<redacted>")
        #expect(String(decoding: redacted.request.body.bytes, as: UTF8.self) == "user=ann&password=<redacted>")
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
                == #"{"user":{"name":"ann","ssn":"<redacted:string>","Password":"<redacted:string>","pin":"<redacted:integer>"},"refresh_token":"<redacted:null>","items":[{"api_key":"<redacted:boolean>"}]}"#
        )
        #expect(
            String(decoding: redacted.response!.body.bytes, as: UTF8.self)
                == #"{"access_token":"<redacted:string>","expires_in":3600}"#)
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
        #expect(twice.request.headers["authorization"] == "Bearer <redacted>")
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
}
