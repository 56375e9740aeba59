import DriftcheckCore
import Foundation
import Testing

@testable import DriftcheckReports

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// A report with every part a writer must handle: severities, an accepted finding,
/// absent and present samples, characters that need escaping, a diagnostic.
let sampleReport = Report(
    exchanges: 42, compared: 40, services: 2,
    findings: [
        Finding(
            service: "orders", endpoint: "GET /orders/{id}", kind: .phantomField, path: "$.items[*].discount",
            message: "the mock sends $.items[*].discount, which the real service never sends", real: nil,
            mock: .number("5"), exchanges: [12, 40],
            evidence: Evidence(realSamples: 0, realDistinct: nil, mockSamples: 2)),
        Finding(
            service: "orders", endpoint: "GET /orders/{id}", kind: .missingField, path: "$.next",
            message: "the real service sends $.next; the mock omits it", real: .null, mock: nil, exchanges: [12]),
        Finding(
            service: "orders", endpoint: "POST /orders", kind: .status, path: "status",
            message: "the mock succeeds with 200 where the real service fails with 401", real: .number("401"),
            mock: .number("200"), exchanges: [7], evidence: Evidence(realSamples: 9, realDistinct: 2, mockSamples: 1)),
        Finding(
            service: "payments", endpoint: "GET /charges/{id}", kind: .header, path: "header:location",
            message: "location differs <&>", real: .string("/charges/1"), mock: .string("/refunds/1"), exchanges: [3]),
        Finding(
            service: "payments", endpoint: "GET /charges/{id}", kind: .type, path: "$.amount",
            message: "the real service sends number, the mock string", real: .number("12.5"), mock: .string("12.50"),
            exchanges: [3, 4], accepted: "amounts become strings in v2 (PAY-123)"),
    ],
    diagnostics: [
        Diagnostic(
            service: "orders", message: "mappings/x.json: response-template helper 'capitalize' is not supported")
    ])

@Suite struct ReportWriterTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// Compares with `Golden/NAME`; `DRIFTCHECK_RECORD_GOLDEN=1` rewrites the file instead.
    func assertGolden(_ text: String, _ name: String) throws {
        let url = Self.golden.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["DRIFTCHECK_RECORD_GOLDEN"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        #expect(text == expected, "\(name) differs from its golden file; DRIFTCHECK_RECORD_GOLDEN=1 re-records it")
    }

    @Test(arguments: [
        (ReportFormat.text, "report.txt"), (.json, "report.json"), (.junit, "report.junit.xml"),
        (.markdown, "report.md"), (.html, "report.html"),
    ])
    func matchesTheGoldenFile(format: ReportFormat, file: String) throws {
        try assertGolden(ReportWriter.write(sampleReport, format: format, failOn: .warning), file)
    }

    @Test func summaryCountsSeveritiesButNotAcceptedFindings() {
        #expect(sampleReport.summary.breaking == 2)
        #expect(sampleReport.summary.warning == 1)
        #expect(sampleReport.summary.info == 1)
        #expect(sampleReport.summary.accepted == 1)
        #expect(sampleReport.fails(at: .breaking))
        #expect(
            !Report(
                exchanges: 1, compared: 1, services: 1, findings: sampleReport.findings.filter { $0.accepted != nil }
            ).fails(at: .info))
    }

    @Test func jsonFollowsTheSpecSchema() throws {
        let document = try JSONValue.parse(ReportWriter.json(sampleReport))
        guard case .object(let top) = document, case .object(let summary)? = document["summary"],
            case .array(let findings)? = document["findings"]
        else {
            Issue.record("not the SPEC shape")
            return
        }
        #expect(Array(top.map(\.key).prefix(3)) == ["version", "summary", "findings"])
        #expect(document["version"] == .number("1"))
        #expect(
            summary.map(\.key).prefix(6) == ["exchanges", "compared", "services", "breaking", "warning", "info"])
        let expectedKeys = ["service", "endpoint", "kind", "severity", "path", "message", "real", "mock", "exchanges"]
        for finding in findings {
            guard case .object(let members) = finding else { continue }
            #expect(Array(members.map(\.key).prefix(9)) == expectedKeys)
        }
        #expect(findings.first?["kind"] == .string("phantom-field"))
        #expect(findings.first?["real"] == .null)
        #expect(findings.first?["exchanges"] == .array([.number("12"), .number("40")]))
        #expect(findings.map { $0["kind"] }.contains(.string("status")))
    }

    @Test func junitIsWellFormedXMLWithAFailurePerGatingFinding() throws {
        let xml = ReportWriter.junit(sampleReport, failOn: .breaking)
        let parser = XMLParser(data: Data(xml.utf8))
        let counter = FailureCounter()
        parser.delegate = counter
        #expect(parser.parse())
        #expect(counter.suites == ["orders", "payments"])
        #expect(counter.cases == 3)
        #expect(counter.failures == 2)
    }

    @Test func textHonoursColourChoice() {
        let plain = ReportWriter.text(sampleReport, color: false)
        let coloured = ReportWriter.text(sampleReport, color: true)
        #expect(!plain.contains("\u{1B}["))
        #expect(coloured.contains("\u{1B}[31;1mBREAKING"))
    }

    @Test func htmlIsSelfContainedAndEscapesText() {
        let html = ReportWriter.html(sampleReport)
        #expect(!html.contains("src=\"http"))
        #expect(!html.contains("href=\"http"))
        #expect(html.contains("location differs &lt;&amp;&gt;"))
        #expect(html.contains("data-severity=\"breaking\""))
        #expect(html.contains("data-filter=\"warning\""))
    }
}

final class FailureCounter: NSObject, XMLParserDelegate {
    var suites: [String] = []
    var cases = 0
    var failures = 0

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        switch elementName {
        case "testsuite": suites.append(attributes["name"] ?? "")
        case "testcase": cases += 1
        case "failure": failures += 1
        default: break
        }
    }
}
