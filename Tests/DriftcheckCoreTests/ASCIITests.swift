import Testing

@testable import DriftcheckCore

@Suite struct ASCIITests {
    @Test func comparesAndLowersOnlyASCIILetters() {
        #expect(ASCII.equalsIgnoringCase("Content-Type", "content-TYPE"))
        #expect(!ASCII.equalsIgnoringCase("Content-Type", "content-typ"))
        // `@` and `` ` `` differ from `[`/`{` only in bit 0x20: they are not letters.
        #expect(!ASCII.equalsIgnoringCase("a@", "a`"))
        #expect(!ASCII.equalsIgnoringCase("[", "{"))
        #expect(ASCII.lowercased("X-Api-KEY") == "x-api-key")
        #expect(ASCII.lowercased("Ünïcode-É") == "Ünïcode-É".replacingOccurrences(of: "U", with: "u"))
        #expect(ASCII.lowercased("already") == "already")
    }

    @Test func trimsSpacesTabsAndLineEnds() {
        #expect(ASCII.trimmed("  gzip\t\r\n") == "gzip")
        #expect(ASCII.trimmed(" \t ") == "")
        #expect(ASCII.trimmed("a b") == "a b")
    }

    @Test func findsByteFragments() {
        #expect(ASCII.contains("x-vault-token", "token"))
        #expect(ASCII.contains("tokentoken", "ent"))
        #expect(!ASCII.contains("toke", "token"))
        #expect(ASCII.contains("anything", ""))
        #expect(!ASCII.contains("", "a"))
        // Secret-looking header names, and ones that only look close.
        let policy = RedactionPolicy()
        #expect(policy.isSecretHeader("X-Upstream-Api-Key"))
        #expect(policy.isSecretHeader("X-Refresh-TOKEN"))
        #expect(!policy.isSecretHeader("WWW-Authenticate"))
        #expect(!policy.isSecretHeader("Content-Type"))
    }
}
