import DriftcheckCore
import Foundation

/// `gate --update-baseline`: appends findings to the policy file's `accept:` list as text,
/// so the comments and layout people wrote stay as they are.
enum Baseline {
    static let placeholder = "TODO: say why this drift is acceptable"

    static func quote(_ text: String) -> String { JSONValue.string(text).serialized() }

    static func entry(_ finding: Finding) -> String {
        """
          - service: \(quote(finding.service))
            endpoint: \(quote(finding.endpoint))
            kind: \(finding.kind.rawValue)
            path: \(quote(finding.path))
            reason: \(quote(placeholder))

        """
    }

    /// Returns how many entries were added.
    static func append(_ findings: [Finding], to path: String) throws -> Int {
        var text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let topLevel = lines.filter { line in
            guard let first = line.first else { return false }
            return first != " " && first != "#" && first != "-" && line.contains(":")
        }
        let hasAccept = topLevel.contains { $0.hasPrefix("accept:") }
        // Appending list items is only safe when accept: is the file's last section.
        if hasAccept && topLevel.last?.hasPrefix("accept:") != true {
            throw UsageError("\(path): move the accept: section to the end of the file so new entries can be appended")
        }
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        if !hasAccept { text += "accept:\n" }
        text += findings.map(entry).joined()
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw UsageError("\(path): cannot write the file")
        }
        // What was written must read back, or the next gate would fail on it.
        _ = try ConfigFile.parse(text, path: path)
        return findings.count
    }
}
