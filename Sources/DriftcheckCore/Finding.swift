import Foundation

/// How much a drift matters to the consumer, lowest first.
public enum Severity: String, Sendable, Codable, CaseIterable, Comparable {
    case info
    case warning
    case breaking

    var rank: Int {
        switch self {
        case .info: return 0
        case .warning: return 1
        case .breaking: return 2
        }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// `--fail-on`: the lowest severity that fails the run, or never.
public enum FailLevel: String, Sendable, CaseIterable {
    case breaking, warning, info, never

    public func fails(_ severity: Severity) -> Bool {
        switch self {
        case .never: return false
        case .breaking: return severity >= .breaking
        case .warning: return severity >= .warning
        case .info: return true
        }
    }
}

/// The ways a mock can differ from the real service (SPEC's drift kinds).
public enum DriftKind: String, Sendable, Codable, CaseIterable {
    case status
    case statusCode = "status-code"
    case contentType = "content-type"
    case phantomField = "phantom-field"
    case type
    case nullability
    case enumValue = "enum"
    case format
    case header
    case missingField = "missing-field"
    case value
    case unmocked
    case unverified
    case staleRecording = "stale-recording"

    public var defaultSeverity: Severity {
        switch self {
        case .status, .contentType, .phantomField, .type: return .breaking
        case .statusCode, .nullability, .enumValue, .format, .header, .unmocked, .staleRecording: return .warning
        case .missingField, .value, .unverified: return .info
        }
    }
}

/// One drift: unique per (service, endpoint, kind, path), carrying every exchange that showed it.
public struct Finding: Sendable, Equatable {
    public var service: String
    public var endpoint: String
    public var kind: DriftKind
    public var severity: Severity
    /// JSONPath into the body, `status`, `header:<name>` or `$`.
    public var path: String
    public var message: String
    public var real: JSONValue?
    public var mock: JSONValue?
    /// Store ids of the exchanges that showed this drift, ascending.
    public var exchanges: [Int64]
    /// Set when `driftcheck.yml` accepts this drift: the reason given there.
    public var accepted: String?
    /// How much was seen on each side behind this finding.
    public var evidence: Evidence?

    public init(
        service: String, endpoint: String, kind: DriftKind, severity: Severity? = nil, path: String, message: String,
        real: JSONValue? = nil, mock: JSONValue? = nil, exchanges: [Int64] = [], accepted: String? = nil,
        evidence: Evidence? = nil
    ) {
        self.evidence = evidence
        self.service = service
        self.endpoint = endpoint
        self.kind = kind
        self.severity = severity ?? kind.defaultSeverity
        self.path = path
        self.message = message
        self.real = real
        self.mock = mock
        self.exchanges = exchanges
        self.accepted = accepted
    }

    /// The identity SPEC gives a finding.
    public var key: String { "\(service)\u{0}\(endpoint)\u{0}\(kind.rawValue)\u{0}\(path)" }
}

/// The samples behind a finding: real answers that had the path and their distinct values,
/// and mock answers that showed the drift.
public struct Evidence: Sendable, Equatable {
    public var realSamples: Int
    /// Distinct real values seen there; nil for objects and arrays, or when there were too many to count.
    public var realDistinct: Int?
    public var mockSamples: Int

    public init(realSamples: Int, realDistinct: Int?, mockSamples: Int) {
        self.realSamples = realSamples
        self.realDistinct = realDistinct
        self.mockSamples = mockSamples
    }

    /// `real 12 samples (4 distinct), mock 3`.
    public var summary: String {
        let distinct = realDistinct.map { " (\($0) distinct)" } ?? ""
        return "real \(realSamples) sample\(realSamples == 1 ? "" : "s")\(distinct), mock \(mockSamples)"
    }
}

/// How much evidence a statistical claim needs (`evidence:` in driftcheck.yml).
public struct EvidenceThresholds: Sendable, Equatable {
    /// Real samples at a path before "always this value", a format, "sometimes null" is claimed.
    public var minSamples: Int
    /// Distinct real requests behind them: one request recorded ten times proves nothing general.
    public var minRequests: Int
    /// String samples before a small set of values is taken as a closed enum.
    public var enumSamples: Int

    public init(minSamples: Int = 3, minRequests: Int = 2, enumSamples: Int = 8) {
        self.minSamples = minSamples
        self.minRequests = minRequests
        self.enumSamples = enumSamples
    }

    public static let standard = EvidenceThresholds()
}

/// Something worth saying that is not drift: an unsupported template helper, a skipped exchange.
public struct Diagnostic: Sendable, Equatable {
    public var service: String?
    public var message: String

    public init(service: String? = nil, message: String) {
        self.service = service
        self.message = message
    }
}

/// What a comparison found, in the order reports print it.
public struct Report: Sendable, Equatable {
    public struct Summary: Sendable, Equatable {
        public var exchanges = 0
        public var compared = 0
        public var services = 0
        public var breaking = 0
        public var warning = 0
        public var info = 0
        public var accepted = 0

        public init() {}
    }

    public var summary: Summary
    public var findings: [Finding]
    public var diagnostics: [Diagnostic]
    /// Why candidate differences were treated as noise (`--explain`).
    public var explanations: [String]

    public init(
        exchanges: Int, compared: Int, services: Int, findings: [Finding], diagnostics: [Diagnostic] = [],
        explanations: [String] = []
    ) {
        self.findings = findings.sorted(by: Report.order)
        self.diagnostics = diagnostics
        self.explanations = explanations
        summary = Summary()
        summary.exchanges = exchanges
        summary.compared = compared
        summary.services = services
        for finding in self.findings {
            if finding.accepted != nil {
                summary.accepted += 1
                continue
            }
            switch finding.severity {
            case .breaking: summary.breaking += 1
            case .warning: summary.warning += 1
            case .info: summary.info += 1
            }
        }
    }

    static func order(_ a: Finding, _ b: Finding) -> Bool {
        if a.service != b.service { return a.service < b.service }
        if a.endpoint != b.endpoint { return a.endpoint < b.endpoint }
        if a.severity != b.severity { return a.severity > b.severity }
        if a.kind != b.kind { return a.kind.rawValue < b.kind.rawValue }
        return a.path < b.path
    }

    /// Whether any finding not accepted reaches `level`.
    public func fails(at level: FailLevel) -> Bool {
        findings.contains { $0.accepted == nil && level.fails($0.severity) }
    }
}
