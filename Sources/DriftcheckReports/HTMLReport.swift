import DriftcheckCore
import Foundation

extension ReportWriter {
    static func html(escaping text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Indented JSON for the side-by-side panes.
    static func display(_ value: JSONValue?) -> String {
        value?.prettyPrinted(expandScalarArrays: true) ?? "(absent)"
    }

    static func sides(_ finding: Finding) -> String {
        guard finding.real != nil || finding.mock != nil else { return "" }
        return
            "<div class=\"sides\"><div><h4>real service</h4><pre>\(html(escaping: display(finding.real)))</pre></div>"
            + "<div><h4>mock</h4><pre>\(html(escaping: display(finding.mock)))</pre></div></div>\n"
    }

    static func footer(_ finding: Finding) -> String {
        let evidence = finding.evidence.map { "evidence: \(html(escaping: $0.summary))" }
        guard !finding.exchanges.isEmpty || evidence != nil else { return "" }
        let ids = finding.exchanges.prefix(20).map(String.init).joined(separator: ", ")
        let exchanges =
            finding.exchanges.isEmpty
            ? nil : "exchanges: \(ids)\(finding.exchanges.count > 20 ? " … (\(finding.exchanges.count))" : "")"
        return "<footer>\([evidence, exchanges].compactMap { $0 }.joined(separator: " · "))</footer>"
    }

    /// One self-contained page: summary, severity filters, and each finding with the real and
    /// the mock value side by side. No external resources.
    public static func html(_ report: Report) -> String {
        let s = report.summary
        var body = ""
        var lastService: String?
        var lastEndpoint: String?
        for finding in report.findings {
            if finding.service != lastService {
                if lastService != nil { body += "</section>\n" }
                body += "<section class=\"service\"><h2>\(html(escaping: finding.service))</h2>\n"
                lastService = finding.service
                lastEndpoint = nil
            }
            if finding.endpoint != lastEndpoint {
                body += "<h3><code>\(html(escaping: finding.endpoint))</code></h3>\n"
                lastEndpoint = finding.endpoint
            }
            let severity = finding.accepted == nil ? finding.severity.rawValue : "accepted"
            body += """
                <article class="finding \(severity)" data-severity="\(severity)">
                <header><span class="badge \(severity)">\(severity)</span> <span class="kind">\(finding.kind.rawValue)</span> <code class="path">\(html(escaping: finding.path))</code></header>
                <p>\(html(escaping: finding.message))\(finding.accepted.map { " <em>Accepted: \(html(escaping: $0))</em>" } ?? "")</p>
                \(sides(finding))\(footer(finding))
                </article>\n
                """
        }
        if lastService != nil { body += "</section>\n" }
        if report.findings.isEmpty {
            body = "<p class=\"clean\">No drift: the mocks answer like the real services.</p>\n"
        }
        let notes = report.diagnostics.map {
            "<li>\(html(escaping: ($0.service.map { "\($0): " } ?? "") + $0.message))</li>"
        }.joined()
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>driftcheck report</title>
            <style>
            :root { --breaking:#c62828; --warning:#b26a00; --info:#1565c0; --accepted:#6b6b6b; --bg:#f7f7f8; --card:#fff; --line:#e2e2e6; }
            * { box-sizing: border-box; }
            body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: var(--bg); color: #1d1d1f; }
            header.top { background: #1d1d1f; color: #fff; padding: 18px 28px; }
            header.top h1 { margin: 0 0 4px; font-size: 20px; }
            .summary { display: flex; gap: 10px; flex-wrap: wrap; margin-top: 10px; }
            .summary button { border: 0; border-radius: 14px; padding: 5px 12px; font-weight: 600; cursor: pointer; color: #fff; opacity: .95; }
            .summary button[aria-pressed=false] { opacity: .35; }
            .summary .stat { color: #ccc; padding: 5px 0; }
            button.breaking, .badge.breaking { background: var(--breaking); } button.warning, .badge.warning { background: var(--warning); }
            button.info, .badge.info { background: var(--info); } button.accepted, .badge.accepted { background: var(--accepted); }
            main { padding: 8px 28px 40px; max-width: 1200px; }
            h2 { margin: 26px 0 6px; font-size: 18px; } h3 { margin: 16px 0 8px; font-size: 14px; color: #444; }
            article { background: var(--card); border: 1px solid var(--line); border-left: 4px solid var(--line); border-radius: 6px; margin: 8px 0; padding: 10px 14px; }
            article.breaking { border-left-color: var(--breaking); } article.warning { border-left-color: var(--warning); }
            article.info { border-left-color: var(--info); } article.accepted { border-left-color: var(--accepted); }
            .badge { color: #fff; border-radius: 4px; padding: 1px 7px; font-size: 12px; text-transform: uppercase; font-weight: 700; }
            .kind { font-weight: 600; } .path { color: #6a1b9a; }
            article p { margin: 6px 0; }
            .sides { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
            .sides h4 { margin: 4px 0; font-size: 12px; color: #666; text-transform: uppercase; letter-spacing: .04em; }
            pre { margin: 0; background: #f3f3f5; border-radius: 4px; padding: 8px; overflow: auto; max-height: 260px; font-size: 12px; }
            footer { color: #777; font-size: 12px; margin-top: 6px; }
            .clean { font-size: 16px; padding: 20px 0; } .notes { color: #555; }
            </style></head><body>
            <header class="top"><h1>driftcheck: mocks vs reality</h1>
            <div>\(s.services) service\(s.services == 1 ? "" : "s"), \(s.compared) of \(s.exchanges) recorded exchanges compared</div>
            <div class="summary">
            <button class="breaking" data-filter="breaking" aria-pressed="true">\(s.breaking) breaking</button>
            <button class="warning" data-filter="warning" aria-pressed="true">\(s.warning) warning</button>
            <button class="info" data-filter="info" aria-pressed="true">\(s.info) info</button>
            <button class="accepted" data-filter="accepted" aria-pressed="true">\(s.accepted) accepted</button>
            <span class="stat">click to show or hide a severity</span>
            </div></header>
            <main>
            \(body)\(notes.isEmpty ? "" : "<h2>Notes</h2><ul class=\"notes\">\(notes)</ul>")
            </main>
            <script>
            document.querySelectorAll('.summary button').forEach(function (button) {
              button.addEventListener('click', function () {
                var on = button.getAttribute('aria-pressed') !== 'true';
                button.setAttribute('aria-pressed', on ? 'true' : 'false');
                document.querySelectorAll('article[data-severity="' + button.dataset.filter + '"]').forEach(function (a) { a.hidden = !on; });
              });
            });
            </script>
            </body></html>

            """
    }
}
