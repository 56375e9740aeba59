import DriftcheckCore
import Foundation
import Testing

/// One recorded request with the real and the mock answer, for table-driven differ tests.
struct Case {
    var method = "GET"
    var path = "/orders/1"
    var query: String? = nil
    var real: (Int, String)
    var mock: (Int, String)?
    var headers: [(String, String)] = []
    var realHeaders: [(String, String)] = [("Content-Type", "application/json")]
    var mockHeaders: [(String, String)] = [("Content-Type", "application/json")]

    init(
        _ real: String, _ mock: String?, status: Int = 200, mockStatus: Int? = nil, path: String = "/orders/1",
        query: String? = nil
    ) {
        self.real = (status, real)
        self.mock = mock.map { (mockStatus ?? status, $0) }
        self.path = path
        self.query = query
    }
}

func diff(_ cases: [Case], explain: Bool = false) -> Differ.Result {
    let replayed = cases.enumerated().map { index, item in
        let exchange = Exchange(
            id: Int64(index + 1), service: "orders",
            request: RecordedRequest(
                method: item.method, host: "orders", port: 80, path: item.path, query: item.query,
                headers: HeaderFields(item.headers)),
            result: .response(
                RecordedResponse(
                    status: item.real.0, headers: HeaderFields(item.realHeaders),
                    body: CapturedBody(bytes: Data(item.real.1.utf8)))),
            startedAt: Date(timeIntervalSince1970: 0), duration: 0)
        let answer: MockAnswer =
            item.mock.map {
                .response(
                    RecordedResponse(
                        status: $0.0, headers: HeaderFields(item.mockHeaders),
                        body: CapturedBody(bytes: Data($0.1.utf8))))
            } ?? .unmatched("no mapping matched")
        return ReplayedExchange(exchange: exchange, answer: answer)
    }
    return Differ(explain: explain).compare(service: "orders", replayed: replayed)
}

func kinds(_ cases: [Case]) -> [String] {
    diff(cases).findings.map { "\($0.kind.rawValue) \($0.severity.rawValue) \($0.path)" }
}

@Suite struct DifferTests {
    @Test func phantomFieldIsBreakingAndMissingFieldIsInfo() {
        #expect(kinds([Case(#"{"id":1}"#, #"{"id":1,"discount":5}"#)]) == ["phantom-field breaking $.discount"])
        #expect(kinds([Case(#"{"id":1,"discount":5}"#, #"{"id":1}"#)]) == ["missing-field info $.discount"])
    }

    @Test func fieldsInsideArraysUseTheStarPath() {
        let real = #"{"items":[{"sku":"A","qty":1},{"sku":"B","qty":2}]}"#
        #expect(
            kinds([Case(real, #"{"items":[{"sku":"A","qty":1,"gift":true}]}"#)]) == [
                "phantom-field breaking $.items[*].gift"
            ])
        // Same length: element i of the mock is judged against element i of the real answer.
        #expect(
            kinds([Case(real, #"{"items":[{"sku":"A","qty":1},{"sku":"B"}]}"#)]) == [
                "missing-field info $.items[*].qty"
            ])
        #expect(kinds([Case(real, #"{"items":[]}"#)]).isEmpty)
    }

    @Test func elementsOfDifferentShapesInOneArrayAreNotMissingFields() {
        // A tree listing: blobs carry a size, trees do not. Identical bodies are no drift.
        let tree = #"{"tree":[{"type":"blob","size":12},{"type":"tree"},{"type":"blob","size":3}]}"#
        #expect(kinds([Case(tree, tree), Case(tree, tree, path: "/orders/2")]).isEmpty)
        // Another length: only fields every real element had, over enough samples, are missed.
        let shorter = #"{"tree":[{"type":"tree"}]}"#
        #expect(kinds([Case(tree, shorter)]).isEmpty)
        let sized = #"{"items":[{"sku":"A","qty":1},{"sku":"B","qty":2},{"sku":"C","qty":3}]}"#
        let one = #"{"items":[{"sku":"A"}]}"#
        #expect(
            kinds([Case(sized, one), Case(sized, one, path: "/orders/2")]) == ["missing-field info $.items[*].qty"])
    }

    @Test func typeChangesAreBreakingInBothDirections() {
        #expect(kinds([Case(#"{"total":10.5}"#, #"{"total":"10.5"}"#)]) == ["type breaking $.total"])
        #expect(kinds([Case(#"{"total":"10.5"}"#, #"{"total":10.5}"#)]) == ["type breaking $.total"])
        #expect(kinds([Case(#"{"tags":["a"]}"#, #"{"tags":"a"}"#)]) == ["type breaking $.tags"])
    }

    @Test func integerVersusFloatIsNotATypeChange() {
        #expect(kinds([Case(#"{"total":10}"#, #"{"total":10.5}"#)]).isEmpty)
        #expect(kinds([Case(#"{"total":10.5}"#, #"{"total":10}"#)]).isEmpty)
    }

    @Test func statusClassAndCode() {
        #expect(kinds([Case(#"{"id":1}"#, #"{"error":"x"}"#, mockStatus: 404)]) == ["status breaking status"])
        let mockSucceeds = diff([Case(#"{"error":"x"}"#, #"{"id":1}"#, status: 503, mockStatus: 200)]).findings
        #expect(mockSucceeds.map(\.kind) == [.status])
        #expect(mockSucceeds[0].message.contains("mock succeeds"))
        // Same class: a warning, and the bodies are not compared.
        #expect(kinds([Case(#"{"id":1}"#, #"{"other":true}"#, mockStatus: 201)]) == ["status-code warning status"])
    }

    @Test func aMockRefusingARedactedCredentialSaysSo() {
        var item = Case(#"{"id":1}"#, #"{"message":"Request was not matched"}"#, mockStatus: 404)
        item.headers = [("Authorization", "Bearer <redacted~sk_live_~l6d6>")]
        let found = diff([item]).findings
        #expect(found.map(\.kind) == [.status])
        #expect(found[0].message.contains("redacted values, replayed as stand-ins: header Authorization"))
        #expect(!diff([Case(#"{"id":1}"#, "{}", mockStatus: 404)]).findings[0].message.contains("redacted"))
    }

    @Test func contentTypeIsBreaking() {
        var text = Case(#"{"id":1}"#, "id=1")
        text.mockHeaders = [("Content-Type", "text/plain")]
        #expect(kinds([text]) == ["content-type breaking header:content-type"])
        var charset = Case(#"{"id":1}"#, #"{"id":1}"#)
        charset.mockHeaders = [("Content-Type", "application/json; charset=utf-8")]
        #expect(kinds([charset]).isEmpty)
    }

    @Test func nullabilityInBothDirections() {
        let sometimesNull = [
            Case(#"{"discount":null}"#, #"{"discount":5}"#, path: "/orders/1"),
            Case(#"{"discount":2}"#, #"{"discount":5}"#, path: "/orders/2"),
            Case(#"{"discount":3}"#, #"{"discount":5}"#, path: "/orders/3"),
        ]
        #expect(kinds(sometimesNull) == ["nullability warning $.discount"])
        // Fewer real samples than the evidence threshold: no claim, and --explain says why.
        let result = diff(Array(sometimesNull.prefix(2)), explain: true)
        #expect(result.findings.isEmpty)
        #expect(
            result.explanations.contains { $0.contains("$.discount") && $0.contains("not enough evidence (2 samples") })
        let onlyNull = [
            Case(#"{"discount":1}"#, #"{"discount":null}"#, path: "/orders/1"),
            Case(#"{"discount":2}"#, #"{"discount":null}"#, path: "/orders/2"),
        ]
        #expect(kinds(onlyNull) == ["nullability warning $.discount"])
        let matching = [
            Case(#"{"discount":null}"#, #"{"discount":null}"#, path: "/orders/1"),
            Case(#"{"discount":2}"#, #"{"discount":3}"#, path: "/orders/2"),
        ]
        #expect(kinds(matching).isEmpty)
    }

    @Test func enumValuesOutsideASmallClosedSet() {
        let statuses = ["pending", "paid", "shipped", "paid", "pending", "paid", "shipped", "paid"]
        let real = statuses.enumerated().map {
            Case(#"{"status":"\#($1)"}"#, #"{"status":"paid"}"#, path: "/orders/\($0)")
        }
        #expect(kinds(real).isEmpty)
        let outside = real + [Case(#"{"status":"paid"}"#, #"{"status":"cancelled"}"#, path: "/orders/99")]
        #expect(kinds(outside) == ["enum warning $.status"])
        // Too few samples make no closed set.
        #expect(kinds([Case(#"{"status":"paid"}"#, #"{"status":"cancelled"}"#)]).isEmpty)
    }

    @Test func formatsAreComparedButTimestampsAndUUIDsAreNotValues() {
        let real = #"{"createdAt":"2026-11-26T10:00:00Z","id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301"}"#
        let otherTime = #"{"createdAt":"2020-01-01T00:00:00.123+02:00","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#
        let three = { (mock: String) in (1...3).map { Case(real, mock, path: "/orders/\($0)") } }
        #expect(kinds(three(otherTime)).isEmpty)
        #expect(
            kinds(three(#"{"createdAt":"yesterday","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}"#)) == [
                "format warning $.createdAt"
            ])
        #expect(kinds(three(#"{"createdAt":"2026-11-26T10:00:00Z","id":"42"}"#)) == ["format warning $.id"])
        // One real sample is no evidence of a format.
        #expect(kinds([Case(real, #"{"createdAt":"yesterday","id":"42"}"#)]).isEmpty)
    }

    @Test func stableValuesDifferAsInfoAndVolatileOnesAreNoise() {
        let real = [
            Case(#"{"currency":"EUR","requestId":"a1"}"#, #"{"currency":"USD","requestId":"zz"}"#),
            Case(#"{"currency":"EUR","requestId":"b2"}"#, #"{"currency":"USD","requestId":"zz"}"#),
            Case(#"{"currency":"EUR","requestId":"c3"}"#, #"{"currency":"USD","requestId":"zz"}"#, path: "/orders/2"),
        ]
        let result = diff(real, explain: true)
        #expect(result.findings.map { "\($0.kind.rawValue) \($0.path)" } == ["value $.currency"])
        #expect(result.findings[0].real == .string("EUR"))
        #expect(result.findings[0].mock == .string("USD"))
        #expect(result.findings[0].exchanges == [1, 2, 3])
        #expect(result.findings[0].evidence == Evidence(realSamples: 3, realDistinct: 1, mockSamples: 3))
        // One request recorded many times is one request: "always EUR" needs distinct requests.
        let sameRequest = diff(Array(real.prefix(2)) + [real[0]], explain: true)
        #expect(sameRequest.findings.isEmpty)
        #expect(sameRequest.explanations.contains { $0.contains("$.currency: not enough evidence") })
        #expect(result.explanations.contains { $0.contains("$.requestId") })
    }

    @Test func rowsOfOneListAreIndependentSamples() {
        // One list request recorded twice: forty rows are forty records, enough for claims.
        let rows = (1...40).map {
            #"{"id":\#($0),"tier":"\#(["gold", "silver"][$0 % 2])","created":"2024-05-0\#($0 % 9 + 1)T10:00:00Z"}"#
        }
        let real = "[" + rows.joined(separator: ",") + "]"
        var mockRows = rows
        mockRows[3] = #"{"id":4,"tier":"MUTANT","created":"2024-05-05"}"#
        let mock = "[" + mockRows.joined(separator: ",") + "]"
        let found = kinds([Case(real, mock, path: "/customers"), Case(real, mock, path: "/customers")])
        #expect(found == ["enum warning $[*].tier", "format warning $[*].created"])
    }

    @Test func aClosedSetHoldsAcrossQueryVariants() {
        // Each query variant alone has too few samples; the field's values pooled over all do not.
        var cases: [Case] = []
        for index in 0..<10 {
            let format = index % 2 == 0 ? "text" : "base64"
            let query = index % 2 == 0 ? "format=text&n=\(index)" : "type=file&n=\(index)"
            cases.append(
                Case(
                    #"{"format":"\#(format)"}"#, #"{"format":"\#(format)"}"#, path: "/files/\(index).txt", query: query)
            )
        }
        cases.append(
            Case(#"{"format":"text"}"#, #"{"format":"MUTANT"}"#, path: "/files/99.txt", query: "format=text&n=99"))
        #expect(kinds(cases) == ["enum warning $.format"])
    }

    @Test func aLocationThatNamesANewResourceEachTimeStillPointsUnderOneParent() {
        func created(_ real: String, _ mock: String) -> Case {
            var item = Case(#"{"name":"n"}"#, #"{"name":"n"}"#, status: 201, path: "/api/contents/notebooks")
            item.method = "POST"
            item.realHeaders.append(("Location", real))
            item.mockHeaders.append(("Location", mock))
            return item
        }
        let same = [
            created("/api/contents/notebooks/Untitled.ipynb", "/api/contents/notebooks/Untitled.ipynb"),
            created("/api/contents/notebooks/Untitled1.ipynb", "/api/contents/notebooks/Untitled.ipynb"),
        ]
        #expect(kinds(same).isEmpty)
        let elsewhere = [
            created("/api/contents/notebooks/Untitled.ipynb", "/elsewhere/1"),
            created("/api/contents/notebooks/Untitled1.ipynb", "/elsewhere/1"),
        ]
        #expect(kinds(elsewhere) == ["header warning header:location"])
    }

    @Test func absoluteURLsThatContainTheHostAreNotDrift() {
        let real = [
            Case(#"{"href":"http://orders.shop.svc:8080/orders/1"}"#, #"{"href":"http://127.0.0.1:9000/orders/1"}"#),
            Case(#"{"href":"http://orders.shop.svc:8080/orders/1"}"#, #"{"href":"http://127.0.0.1:9000/orders/1"}"#),
        ]
        #expect(kinds(real).isEmpty)
    }

    @Test func meaningfulHeaders() {
        var created = Case(#"{"id":1}"#, #"{"id":1}"#, status: 201)
        created.realHeaders.append(("Location", "http://orders.shop/orders/17"))
        #expect(kinds([created]) == ["header warning header:location"])
        created.mockHeaders.append(("Location", "/orders/2"))
        #expect(kinds([created]).isEmpty)
        created.mockHeaders[1] = ("Location", "/carts/2")
        #expect(kinds([created]) == ["header warning header:location"])
    }

    @Test func mapsKeyedByIdsAreComparedByValueShape() {
        let real = #"{"prices":{"1001":9.5,"1002":3}}"#
        #expect(kinds([Case(real, #"{"prices":{"2001":1.25}}"#)]).isEmpty)
        #expect(kinds([Case(real, #"{"prices":{"2001":"1.25"}}"#)]) == ["type breaking $.prices[*]"])
    }

    @Test func aResponseShapeThatDependsOnAQueryParameter() {
        let plain = Case(#"{"id":1,"total":5}"#, #"{"id":1,"total":5}"#, path: "/orders/1")
        var expanded = Case(
            #"{"id":2,"total":5,"items":[{"sku":"A"}]}"#, #"{"id":2,"total":5,"items":[{"sku":"A"}]}"#,
            path: "/orders/2", query: "expand=items")
        #expect(kinds([plain, expanded]).isEmpty)
        expanded.mock = (200, #"{"id":2,"total":5}"#)
        #expect(kinds([plain, expanded]) == ["missing-field info $.items"])
        var leaky = plain
        leaky.mock = (200, #"{"id":1,"total":5,"items":[]}"#)
        #expect(kinds([leaky, expanded]) == ["phantom-field breaking $.items", "missing-field info $.items"])
    }

    @Test func unmockedRequests() {
        let result = diff([Case(#"{"id":1}"#, nil)])
        #expect(result.findings.map(\.kind) == [.unmocked])
        #expect(result.findings[0].path == "$")
        #expect(result.findings[0].severity == .warning)
    }

    @Test func redactedValuesKeepTheirType() {
        #expect(kinds([Case(#"{"token":"<redacted:string>"}"#, #"{"token":"abc"}"#)]).isEmpty)
        #expect(kinds([Case(#"{"pin":"<redacted:integer>"}"#, #"{"pin":"1234"}"#)]) == ["type breaking $.pin"])
    }

    @Test func oneFindingPerKeyCarriesEveryExchange() {
        let cases = (1...3).map { Case(#"{"id":\#($0)}"#, #"{"id":\#($0),"extra":1}"#, path: "/orders/\($0)") }
        let findings = diff(cases).findings
        #expect(findings.count == 1)
        #expect(findings[0].endpoint == "GET /orders/{id}")
        #expect(findings[0].exchanges == [1, 2, 3])
    }
}
