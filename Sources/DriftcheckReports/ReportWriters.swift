import DriftcheckCore
import Foundation

/// Report formats (`--format`).
public enum ReportFormat: String, CaseIterable, Sendable {
    case text, json, junit, markdown, html
}

/// Pure report writers: a `Report` in, a `String` out.
public enum ReportWriter {
    public static func write(_ report: Report, format: ReportFormat, failOn: FailLevel, color: Bool = false) -> String {
        switch format {
        case .text: return text(report, color: color)
        case .json: return json(report)
        case .junit: return junit(report, failOn: failOn)
        case .markdown: return markdown(report, failOn: failOn)
        case .html: return html(report)
        }
    }

    // MARK: JSON

    /// SPEC's schema, keys in a fixed order, findings in report order.
    public static func json(_ report: Report) -> String {
        let summary = report.summary
        var summaryMembers: [(key: String, value: JSONValue)] = [
            ("exchanges", number(summary.exchanges)), ("compared", number(summary.compared)),
            ("services", number(summary.services)), ("breaking", number(summary.breaking)),
            ("warning", number(summary.warning)), ("info", number(summary.info)),
        ]
        if summary.accepted > 0 { summaryMembers.append(("accepted", number(summary.accepted))) }
        let findings: [JSONValue] = report.findings.map { finding in
            var members: [(key: String, value: JSONValue)] = [
                ("service", .string(finding.service)), ("endpoint", .string(finding.endpoint)),
                ("kind", .string(finding.kind.rawValue)), ("severity", .string(finding.severity.rawValue)),
                ("path", .string(finding.path)), ("message", .string(finding.message)),
                ("real", finding.real ?? .null), ("mock", finding.mock ?? .null),
                ("exchanges", .array(finding.exchanges.map { .number(String($0)) })),
            ]
            if let evidence = finding.evidence {
                var real: [(key: String, value: JSONValue)] = [("samples", number(evidence.realSamples))]
                if let distinct = evidence.realDistinct { real.append(("distinct", number(distinct))) }
                members.append(
                    (
                        "evidence",
                        .object([
                            ("real", .object(real)), ("mock", .object([("samples", number(evidence.mockSamples))])),
                        ])
                    ))
            }
            if let reason = finding.accepted { members.append(("accepted", .string(reason))) }
            return .object(members)
        }
        var document: [(key: String, value: JSONValue)] = [
            ("version", .number("1")), ("summary", .object(summaryMembers)), ("findings", .array(findings)),
        ]
        if !report.diagnostics.isEmpty {
            document.append(
                (
                    "diagnostics",
                    .array(report.diagnostics.map { .string(($0.service.map { "\($0): " } ?? "") + $0.message) })
                ))
        }
        return JSONValue.object(document).prettyPrinted() + "\n"
    }

    static func number(_ value: Int) -> JSONValue { .number(String(value)) }

    // MARK: Text

    static func label(_ severity: Severity) -> String { severity.rawValue.uppercased() }

    static func paint(_ text: String, _ severity: Severity?, _ color: Bool) -> String {
        guard color else { return text }
        let code: String
        switch severity {
        case .breaking: code = "31;1"
        case .warning: code = "33"
        case .info: code = "36"
        case nil: code = "1"
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    static func excerpt(_ value: JSONValue?, limit: Int = 80) -> String {
        guard let value else { return "—" }
        let text = value.serialized()
        return text.count > limit ? String(text.prefix(limit)) + "…" : text
    }

    /// Grouped by service, then endpoint; one summary line at the end.
    public static func text(_ report: Report, color: Bool) -> String {
        var out = ""
        var lastService: String?
        var lastEndpoint: String?
        for finding in report.findings {
            if finding.service != lastService {
                out += (lastService == nil ? "" : "\n") + paint(finding.service, nil, color) + "\n"
                lastService = finding.service
                lastEndpoint = nil
            }
            if finding.endpoint != lastEndpoint {
                out += "  \(finding.endpoint)\n"
                lastEndpoint = finding.endpoint
            }
            let severity = finding.accepted == nil ? label(finding.severity) : "ACCEPTED"
            let head = severity.padding(toLength: 9, withPad: " ", startingAt: 0)
            out +=
                "    \(paint(head, finding.accepted == nil ? finding.severity : .info, color)) \(finding.kind.rawValue) \(finding.path)\n"
            out += "              \(finding.message)\n"
            if finding.real != nil || finding.mock != nil {
                out += "              real: \(excerpt(finding.real))   mock: \(excerpt(finding.mock))\n"
            }
            if let evidence = finding.evidence { out += "              evidence: \(evidence.summary)\n" }
            if let reason = finding.accepted { out += "              accepted: \(reason)\n" }
            if !finding.exchanges.isEmpty {
                let ids = finding.exchanges.prefix(8).map(String.init).joined(separator: ", ")
                out +=
                    "              exchanges: \(ids)\(finding.exchanges.count > 8 ? ", … (\(finding.exchanges.count))" : "")\n"
            }
        }
        for diagnostic in report.diagnostics {
            out += "note: \(diagnostic.service.map { "\($0): " } ?? "")\(diagnostic.message)\n"
        }
        if !report.explanations.isEmpty {
            out += "\nnoise (--explain):\n" + report.explanations.map { "  \($0)\n" }.joined()
        }
        if !report.findings.isEmpty { out += "\n" }
        out += summaryLine(report, color: color) + "\n"
        return out
    }

    public static func summaryLine(_ report: Report, color: Bool = false) -> String {
        let s = report.summary
        var parts = [
            paint("\(s.breaking) breaking", s.breaking > 0 ? .breaking : nil, color && s.breaking > 0),
            paint("\(s.warning) warning\(s.warning == 1 ? "" : "s")", .warning, color && s.warning > 0),
            paint("\(s.info) info", .info, color && s.info > 0),
        ]
        if s.accepted > 0 { parts.append("\(s.accepted) accepted") }
        return
            "driftcheck: \(s.services) service\(s.services == 1 ? "" : "s"), \(s.compared) of \(s.exchanges) exchanges compared: "
            + parts.joined(separator: ", ")
    }

    // MARK: Markdown

    public static func markdown(_ report: Report, failOn: FailLevel) -> String {
        let s = report.summary
        let verdict =
            report.fails(at: failOn)
            ? "❌ drift at or above `\(failOn.rawValue)`" : "✅ no drift at or above `\(failOn.rawValue)`"
        var out = "## driftcheck\n\n\(verdict)\n\n"
        out +=
            "| services | exchanges compared | breaking | warning | info | accepted |\n|---:|---:|---:|---:|---:|---:|\n"
        out +=
            "| \(s.services) | \(s.compared) / \(s.exchanges) | \(s.breaking) | \(s.warning) | \(s.info) | \(s.accepted) |\n"
        guard !report.findings.isEmpty else { return out }
        out +=
            "\n| severity | service | endpoint | kind | path | what | real | mock | evidence |\n|---|---|---|---|---|---|---|---|---|\n"
        for finding in report.findings {
            let severity = finding.accepted == nil ? finding.severity.rawValue : "accepted"
            let cells = [
                severity, finding.service, "`\(finding.endpoint)`", finding.kind.rawValue, "`\(finding.path)`",
                finding.message + (finding.accepted.map { " (accepted: \($0))" } ?? ""),
                finding.real.map { "`\(excerpt($0, limit: 40))`" } ?? "—",
                finding.mock.map { "`\(excerpt($0, limit: 40))`" } ?? "—",
                finding.evidence?.summary ?? "—",
            ]
            // GitHub renders HTML inside Markdown: angle brackets in values must not become tags.
            let escaped = cells.map {
                $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
                    .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            }
            out += "| " + escaped.joined(separator: " | ") + " |\n"
        }
        return out
    }

    // MARK: JUnit

    static func xml(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case _ where scalar.value < 0x20 && scalar != "\n" && scalar != "\t": out += " "
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A testsuite per service, a testcase per endpoint, a failure per finding at or above `failOn`.
    public static func junit(_ report: Report, failOn: FailLevel) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        let services = Array(Set(report.findings.map(\.service))).sorted()
        let failing = { (finding: Finding) in finding.accepted == nil && failOn.fails(finding.severity) }
        let totalCases = services.reduce(0) { total, service in
            total + Set(report.findings.filter { $0.service == service }.map(\.endpoint)).count
        }
        let totalFailures = report.findings.filter(failing).count
        out += "<testsuites name=\"driftcheck\" tests=\"\(totalCases)\" failures=\"\(totalFailures)\">\n"
        for service in services {
            let findings = report.findings.filter { $0.service == service }
            let endpoints = Array(Set(findings.map(\.endpoint))).sorted()
            out +=
                "  <testsuite name=\"\(xml(service))\" tests=\"\(endpoints.count)\" failures=\"\(findings.filter(failing).count)\">\n"
            for endpoint in endpoints {
                let here = findings.filter { $0.endpoint == endpoint }
                out += "    <testcase classname=\"\(xml(service))\" name=\"\(xml(endpoint))\">\n"
                for finding in here where failing(finding) {
                    out +=
                        "      <failure type=\"\(finding.kind.rawValue)\" message=\"\(xml("\(finding.severity.rawValue) \(finding.kind.rawValue) \(finding.path): \(finding.message)"))\">"
                    out += xml(
                        "real: \(excerpt(finding.real, limit: 400))\nmock: \(excerpt(finding.mock, limit: 400))\nexchanges: \(finding.exchanges.map(String.init).joined(separator: ", "))"
                    )
                    out += "</failure>\n"
                }
                let others = here.filter { !failing($0) }
                if !others.isEmpty {
                    out += "      <system-out>"
                    out += xml(
                        others.map {
                            "\($0.accepted == nil ? $0.severity.rawValue : "accepted") \($0.kind.rawValue) \($0.path): \($0.message)"
                        }.joined(separator: "\n"))
                    out += "</system-out>\n"
                }
                out += "    </testcase>\n"
            }
            out += "  </testsuite>\n"
        }
        out += "</testsuites>\n"
        return out
    }
}
