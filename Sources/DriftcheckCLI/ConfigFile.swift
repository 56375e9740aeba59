import DriftcheckCore
import DriftcheckYAML
import Foundation

/// `driftcheck.yml`:
///
/// ```yaml
/// max-age: 30d                  # older recordings raise stale-recording
/// rules:                        # later rules win; severity: off silences
///   - { service: orders, path: "$.debug", severity: off }
///   - { kind: missing-field, severity: warning }
/// accept:
///   - { service: orders, endpoint: "GET /orders/{id}", kind: phantom-field, path: "$.discount",
///       reason: "discount ships in the next release", expires: 2027-01-31 }
/// redact:                       # on top of the defaults, for record, import and export
///   headers: [x-tenant-key]
///   fields: [ssn, "$.card.number"]
/// evidence:                     # samples a statistical claim needs (these are the defaults)
///   min-samples: 3              # real samples at a path: "always", formats, "sometimes null"
///   min-requests: 2             # distinct real requests behind them
///   enum-samples: 8             # string samples before a small set of values is an enum
/// replay:                       # sent to mocks on replay; never stored or reported
///   headers: { Authorization: "Bearer test-token" }
/// ```
enum ConfigFile {
    static let defaultPath = "driftcheck.yml"

    /// The policy at `explicit`, else `driftcheck.yml` when present, else the empty policy.
    static func load(explicit: String?) throws -> Policy {
        let path = explicit ?? defaultPath
        guard FileManager.default.fileExists(atPath: path) else {
            if explicit != nil { throw UsageError("--config \(path): no such file") }
            return Policy()
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw UsageError("\(path): cannot read the file")
        }
        return try parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws -> Policy {
        let node: Any?
        do { node = try SafeYAML.load(text, path: path) } catch { throw UsageError(error.description) }
        guard let root = node as? [String: Any] ?? (node == nil ? [:] : nil) else {
            throw UsageError("\(path): expected a mapping with rules:, accept: or max-age:")
        }
        let known: Set<String> = ["version", "max-age", "rules", "accept", "redact", "evidence", "replay"]
        if let unknown = root.keys.filter({ !known.contains($0) }).sorted().first {
            throw UsageError(
                "\(path): unknown key '\(unknown)' (expected version, max-age, rules, accept, redact, evidence, replay)"
            )
        }
        var policy = Policy()
        if let age = root["max-age"] {
            guard let seconds = duration("\(age)") else {
                throw UsageError("\(path): max-age '\(age)': expected a duration like 30d, 12h or 90m")
            }
            policy.maxAge = seconds
        }
        if let evidence = root["evidence"] {
            guard let map = evidence as? [String: Any] else {
                throw UsageError("\(path): evidence: expected min-samples:, min-requests: and enum-samples:")
            }
            try checkKeys(map, ["min-samples", "min-requests", "enum-samples"], "\(path): evidence")
            for (key, target) in [
                ("min-samples", \EvidenceThresholds.minSamples), ("min-requests", \EvidenceThresholds.minRequests),
                ("enum-samples", \EvidenceThresholds.enumSamples),
            ] {
                guard let value = map[key] else { continue }
                guard let number = Int("\(value)"), number >= 1, number <= 1_000_000 else {
                    throw UsageError("\(path): evidence.\(key) '\(value)': expected a whole number from 1 to 1000000")
                }
                policy.evidence[keyPath: target] = number
            }
        }
        if let replay = root["replay"] {
            guard let map = replay as? [String: Any] else {
                throw UsageError("\(path): replay: expected headers: with NAME: VALUE pairs")
            }
            try checkKeys(map, ["headers"], "\(path): replay")
            if let headers = map["headers"] {
                guard let pairs = headers as? [String: Any] else {
                    throw UsageError("\(path): replay.headers: expected NAME: VALUE pairs")
                }
                for (name, value) in pairs.sorted(by: { $0.key < $1.key }) {
                    guard !(value is [Any]) && !(value is [String: Any]), HTTPToken.isValidName(name),
                        HTTPToken.isValidValue("\(value)")
                    else {
                        throw UsageError("\(path): replay.headers.\(name): expected a header name and a text value")
                    }
                    policy.replayHeaders.add(name, "\(value)")
                }
            }
        }
        if let redact = root["redact"] {
            guard let map = redact as? [String: Any] else {
                throw UsageError("\(path): redact: expected headers: and fields: lists")
            }
            try checkKeys(map, ["headers", "fields"], "\(path): redact")
            for (key, target) in [("headers", \Policy.redactHeaders), ("fields", \Policy.redactFields)] {
                guard let value = map[key] else { continue }
                guard let names = value as? [Any], names.allSatisfy({ $0 is String }) else {
                    throw UsageError("\(path): redact.\(key): must be a list of names")
                }
                policy[keyPath: target] = names.compactMap { $0 as? String }
            }
            var probe = RedactionPolicy()
            for field in policy.redactFields {
                do { try probe.addField(field) } catch { throw UsageError("\(path): redact.fields: \(error)") }
            }
        }
        for (index, item) in try list(root["rules"], "rules", path).enumerated() {
            let context = "\(path): rules[\(index)]"
            let severityText = try string(item["severity"], "severity", context)
            guard let severityText else {
                throw UsageError("\(context): severity: is required (off, info, warning, breaking)")
            }
            let severity: Severity?
            if severityText == "off" || severityText == "false" {
                severity = nil
            } else if let level = Severity(rawValue: severityText) {
                severity = level
            } else {
                throw UsageError("\(context): severity '\(severityText)' is not one of off, info, warning, breaking")
            }
            try checkKeys(item, ["service", "endpoint", "kind", "path", "severity"], context)
            policy.rules.append(
                Policy.Rule(
                    service: try string(item["service"], "service", context),
                    endpoint: try string(item["endpoint"], "endpoint", context),
                    kind: try kind(item["kind"], context), path: try string(item["path"], "path", context),
                    severity: severity))
        }
        for (index, item) in try list(root["accept"], "accept", path).enumerated() {
            let context = "\(path): accept[\(index)]"
            try checkKeys(item, ["service", "endpoint", "kind", "path", "reason", "expires"], context)
            guard let service = try string(item["service"], "service", context) else {
                throw UsageError("\(context): service: is required")
            }
            guard let reason = try string(item["reason"], "reason", context), !reason.isEmpty else {
                throw UsageError("\(context): reason: is required — say why this drift is acceptable")
            }
            var expires: Date?
            if let raw = item["expires"] {
                let text = raw is Date ? Self.dayFormatter.string(from: raw as! Date) : "\(raw)"
                guard let date = Self.dayFormatter.date(from: text) else {
                    throw UsageError("\(context): expires '\(text)': expected a date like 2027-01-31")
                }
                // An acceptance holds through the whole day it expires on.
                expires = date.addingTimeInterval(86_400)
            }
            policy.accept.append(
                Policy.Acceptance(
                    service: service, endpoint: try string(item["endpoint"], "endpoint", context),
                    kind: try kind(item["kind"], context), path: try string(item["path"], "path", context),
                    reason: reason,
                    expires: expires))
        }
        return policy
    }

    static let dayFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter
    }()

    /// Mappings with string keys, sequences and scalars (typed as YAML resolves them). At most
    /// `budget` nodes: aliases are resolved by reference, so a "billion laughs" file is small
    /// on disk and enormous once walked.
    static func list(_ value: Any?, _ name: String, _ path: String) throws -> [[String: Any]] {
        guard let value else { return [] }
        guard let items = value as? [Any] else { throw UsageError("\(path): \(name): must be a list") }
        return try items.enumerated().map { index, item in
            guard let map = item as? [String: Any] else {
                throw UsageError("\(path): \(name)[\(index)]: must be a mapping")
            }
            return map
        }
    }

    static func checkKeys(_ item: [String: Any], _ allowed: Set<String>, _ context: String) throws {
        if let unknown = item.keys.filter({ !allowed.contains($0) }).sorted().first {
            throw UsageError(
                "\(context): unknown key '\(unknown)' (expected \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    static func string(_ value: Any?, _ name: String, _ context: String) throws -> String? {
        guard let value else { return nil }
        if let text = value as? String { return text }
        if let bool = value as? Bool { return bool ? "true" : "false" }
        if value is Int || value is Double { return "\(value)" }
        throw UsageError("\(context): \(name): must be a string")
    }

    static func kind(_ value: Any?, _ context: String) throws -> DriftKind? {
        guard let text = try string(value, "kind", context) else { return nil }
        guard let kind = DriftKind(rawValue: text) else {
            throw UsageError(
                "\(context): kind '\(text)' is not a drift kind (\(DriftKind.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        return kind
    }

    /// `30d`, `12h`, `90m`, `3600s` or seconds.
    static func duration(_ text: String) -> TimeInterval? {
        let units: [Character: Double] = ["d": 86_400, "h": 3600, "m": 60, "s": 1, "w": 604_800]
        if let last = text.last, let factor = units[last], let value = Double(text.dropLast()), value > 0 {
            return value * factor
        }
        return Double(text).flatMap { $0 > 0 ? $0 : nil }
    }
}

extension Policy {
    /// The default redaction plus this file's `redact:` and the command line's additions.
    func redaction(headers: [String] = [], fields: [String] = []) throws -> RedactionPolicy {
        var policy = RedactionPolicy()
        for header in redactHeaders + headers { policy.addHeader(header) }
        for field in redactFields + fields {
            do { try policy.addField(field) } catch { throw UsageError("--redact-field: \(error)") }
        }
        return policy
    }
}
