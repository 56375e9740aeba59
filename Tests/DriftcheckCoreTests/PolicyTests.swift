import DriftcheckCore
import Foundation
import Testing

@Suite struct PolicyTests {
    let findings = [
        Finding(
            service: "orders", endpoint: "GET /orders/{id}", kind: .phantomField, path: "$.debug.trace", message: "m"),
        Finding(service: "orders", endpoint: "GET /orders/{id}", kind: .missingField, path: "$.next", message: "m"),
        Finding(service: "payments", endpoint: "GET /charges/{id}", kind: .type, path: "$.amount", message: "m"),
    ]

    @Test func rulesRaiseLowerAndSilenceTheLastOneWinning() {
        let policy = Policy(rules: [
            Policy.Rule(kind: .missingField, severity: .breaking),
            Policy.Rule(service: "orders", path: "$.debug", severity: nil),
            Policy.Rule(service: "payments", severity: .info),
        ])
        let outcome = policy.apply(findings, now: Date())
        #expect(outcome.findings.map(\.path) == ["$.next", "$.amount"])
        #expect(outcome.findings.map(\.severity) == [.breaking, .info])
        #expect(outcome.explanations.count == 1)
    }

    @Test func pathRulesCoverWholeSubtreesOnly() {
        let policy = Policy(rules: [Policy.Rule(path: "$.ne", severity: nil)])
        #expect(policy.apply(findings, now: Date()).findings.count == 3)
    }

    @Test func acceptedDriftsStopFailingUntilTheyExpire() {
        let day = Date(timeIntervalSince1970: 1_800_000_000)
        let policy = Policy(accept: [
            Policy.Acceptance(service: "payments", kind: .type, path: "$.amount", reason: "v2 migration", expires: day)
        ])
        let before = Report(
            exchanges: 1, compared: 1, services: 1,
            findings: policy.apply(findings, now: day.addingTimeInterval(-60)).findings)
        #expect(before.findings.first { $0.path == "$.amount" }?.accepted == "v2 migration")
        #expect(before.summary.accepted == 1)
        #expect(
            !Report(
                exchanges: 1, compared: 1, services: 1, findings: before.findings.filter { $0.service == "payments" }
            ).fails(at: .info))
        let after = policy.apply(findings, now: day.addingTimeInterval(60))
        #expect(after.findings.first { $0.path == "$.amount" }?.accepted == nil)
        #expect(after.explanations.contains { $0.contains("acceptance expired") })
    }
}
