import DriftcheckCore
import Testing

@Suite struct HostPatternTests {
    @Test(arguments: [
        ("*.stripe.com", "api.stripe.com", true), ("*.stripe.com", "a.b.stripe.com", true),
        ("*.stripe.com", "stripe.com", false), ("*.stripe.com", "api.stripe.com.evil.test", false),
        ("API.Payments.test", "api.payments.TEST", true), ("api-?.test", "api-1.test", true),
        ("api-?.test", "api-12.test", false), ("*", "anything.at.all", true), ("127.0.0.1", "127.0.0.1", true),
        ("[::1]", "::1", true), ("*.svc.cluster.local", "payments.shop.svc.cluster.local", true),
        ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false),
    ])
    func globsMatchHostsCaseInsensitively(pattern: String, host: String, matches: Bool) throws {
        let parsed = try #require(HostPattern(pattern))
        #expect(parsed.matches(host) == matches)
    }

    @Test(arguments: [
        "", "api.stripe.com:443", "bad host", "host/path", "https://x.test", "ä.test",
        String(repeating: "a", count: 256),
    ])
    func whatNoHostCanHoldIsRefused(pattern: String) {
        #expect(HostPattern(pattern) == nil)
    }

    /// One backtrack point: a pattern of many stars against a long near-miss answers at once.
    @Test func manyStarsStayLinear() throws {
        let pattern = try #require(HostPattern(String(repeating: "*a", count: 60) + "b"))
        #expect(!pattern.matches(String(repeating: "a", count: 250)))
    }
}
