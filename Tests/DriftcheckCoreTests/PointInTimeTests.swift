import DriftcheckCore
import Foundation
import Testing

@Suite struct PointInTimeTests {
    static let now = Date(timeIntervalSince1970: 1_790_000_000)

    @Test(
        arguments: [
            ("90m", 1_790_000_000 - 5400.0), ("12h", 1_790_000_000 - 43_200.0), ("7d", 1_790_000_000 - 604_800.0),
            ("2w", 1_790_000_000 - 1_209_600.0), ("30s", 1_789_999_970.0), ("1.5h", 1_790_000_000 - 5400.0),
            ("2026-11-01", 1_793_491_200.0), ("2026-09-21T14:13:20Z", 1_790_000_000.0),
            ("2026-09-21T14:13:20.010Z", 1_790_000_000.01), ("2026-09-21T16:13:20+02:00", 1_790_000_000.0),
        ] as [(String, Double)])
    func readsDatesTimesAndAges(text: String, expected: Double) {
        let date = PointInTime.parse(text, now: Self.now)
        #expect(abs((date?.timeIntervalSince1970 ?? 0) - expected) < 0.0005, "\(text)")
    }

    @Test(arguments: ["", "yesterday", "7", "7y", "-3d", "2026-13-01", "nand", "infd", "2026-11-01 10:00"])
    func refusesAnythingElse(text: String) {
        #expect(PointInTime.parse(text, now: Self.now) == nil)
    }
}
