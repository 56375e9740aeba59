import Foundation

/// What `driftcheck.yml` says about findings: severity rules and accepted drifts.
public struct Policy: Sendable, Equatable {
    /// A rule narrows by service, endpoint, kind and path prefix; `severity` nil silences.
    public struct Rule: Sendable, Equatable {
        public var service: String?
        public var endpoint: String?
        public var kind: DriftKind?
        /// A JSONPath prefix: `$.meta` covers `$.meta.trace` and `$.meta[*].id`.
        public var path: String?
        public var severity: Severity?

        public init(
            service: String? = nil, endpoint: String? = nil, kind: DriftKind? = nil, path: String? = nil,
            severity: Severity?
        ) {
            self.service = service
            self.endpoint = endpoint
            self.kind = kind
            self.path = path
            self.severity = severity
        }

        func covers(_ finding: Finding) -> Bool {
            if let service, service != finding.service { return false }
            if let endpoint, endpoint != finding.endpoint { return false }
            if let kind, kind != finding.kind { return false }
            if let path, !Policy.pathCovers(path, finding.path) { return false }
            return true
        }
    }

    /// A known drift someone gave a reason for; it stops failing until `expires`.
    public struct Acceptance: Sendable, Equatable {
        public var service: String
        public var endpoint: String?
        public var kind: DriftKind?
        public var path: String?
        public var reason: String
        public var expires: Date?

        public init(
            service: String, endpoint: String? = nil, kind: DriftKind? = nil, path: String? = nil, reason: String,
            expires: Date? = nil
        ) {
            self.service = service
            self.endpoint = endpoint
            self.kind = kind
            self.path = path
            self.reason = reason
            self.expires = expires
        }
    }

    public var rules: [Rule]
    public var accept: [Acceptance]
    /// Recordings older than this (seconds) raise `stale-recording`.
    public var maxAge: TimeInterval?
    /// `redact: headers:` — more headers to redact when recording, importing and exporting.
    public var redactHeaders: [String] = []
    /// `redact: fields:` — more JSON member names or JSONPaths to redact.
    public var redactFields: [String] = []
    /// `evidence:` — how many samples a statistical claim needs.
    public var evidence = EvidenceThresholds.standard
    /// `replay: headers:` — credentials a mock expects, sent on replay; never stored or reported.
    public var replayHeaders = HeaderFields()

    public init(rules: [Rule] = [], accept: [Acceptance] = [], maxAge: TimeInterval? = nil) {
        self.rules = rules
        self.accept = accept
        self.maxAge = maxAge
    }

    static func pathCovers(_ prefix: String, _ path: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.dropFirst(prefix.count)
        return rest.isEmpty || rest.hasPrefix(".") || rest.hasPrefix("[")
    }

    public struct Outcome: Sendable {
        public var findings: [Finding]
        /// Why findings were silenced or accepted (`--explain`).
        public var explanations: [String]
    }

    /// Applies rules in order (the last that covers a finding wins), then acceptances that
    /// have not expired at `now`.
    public func apply(_ findings: [Finding], now: Date) -> Outcome {
        var kept: [Finding] = []
        var explanations: [String] = []
        for var finding in findings {
            var silenced = false
            for rule in rules where rule.covers(finding) {
                if let severity = rule.severity {
                    finding.severity = severity
                    silenced = false
                } else {
                    silenced = true
                }
            }
            if silenced {
                explanations.append(
                    "\(finding.service) \(finding.endpoint) \(finding.kind.rawValue) \(finding.path): silenced by driftcheck.yml"
                )
                continue
            }
            if let acceptance = accept.first(where: { $0.covers(finding) }) {
                if let expires = acceptance.expires, expires < now {
                    explanations.append(
                        "\(finding.service) \(finding.endpoint) \(finding.kind.rawValue) \(finding.path): acceptance expired"
                    )
                } else {
                    finding.accepted = acceptance.reason
                }
            }
            kept.append(finding)
        }
        return Outcome(findings: kept, explanations: explanations)
    }
}

extension Policy.Acceptance {
    func covers(_ finding: Finding) -> Bool {
        if service != finding.service { return false }
        if let endpoint, endpoint != finding.endpoint { return false }
        if let kind, kind != finding.kind { return false }
        if let path, path != finding.path { return false }
        return true
    }
}
