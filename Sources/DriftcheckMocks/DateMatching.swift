import DriftcheckCore
import Foundation

/// WireMock's date-time matchers: `before`, `after`, `equalToDateTime`, with an expected value
/// that is a literal or `now` with an offset (`now +3 days`, or `expectedOffset` and
/// `expectedOffsetUnit`), truncation of either side (`first day of month`…) and `actualFormat`.
/// All in UTC, as WireMock computes them.
struct DateMatcher {
    enum Comparison: String {
        case before, after, equalToDateTime
    }

    let comparison: Comparison
    /// The expected instant, resolved against the engine's clock when the mapping loads.
    let expected: Date
    let truncateActual: Truncation?
    let actualFormat: DateFormatter?

    enum Truncation: String, CaseIterable {
        case firstMinuteOfHour = "first minute of hour"
        case firstHourOfDay = "first hour of day"
        case firstDayOfMonth = "first day of month"
        case firstDayOfNextMonth = "first day of next month"
        case lastDayOfMonth = "last day of month"
        case firstDayOfYear = "first day of year"
        case firstDayOfNextYear = "first day of next year"
        case lastDayOfYear = "last day of year"

        func apply(_ date: Date) -> Date {
            let calendar = DateMatcher.calendar
            var parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
            parts.second = 0
            parts.nanosecond = 0
            switch self {
            case .firstMinuteOfHour:
                parts.minute = 0
            case .firstHourOfDay:
                parts.minute = 0
                parts.hour = 0
            case .firstDayOfMonth, .firstDayOfNextMonth, .lastDayOfMonth:
                (parts.minute, parts.hour, parts.day) = (0, 0, 1)
            case .firstDayOfYear, .firstDayOfNextYear, .lastDayOfYear:
                (parts.minute, parts.hour, parts.day, parts.month) = (0, 0, 1, 1)
            }
            let start = calendar.date(from: parts) ?? date
            switch self {
            case .firstDayOfNextMonth: return calendar.date(byAdding: .month, value: 1, to: start) ?? start
            case .lastDayOfMonth:
                let next = calendar.date(byAdding: .month, value: 1, to: start) ?? start
                return calendar.date(byAdding: .day, value: -1, to: next) ?? start
            case .firstDayOfNextYear: return calendar.date(byAdding: .year, value: 1, to: start) ?? start
            case .lastDayOfYear:
                let next = calendar.date(byAdding: .year, value: 1, to: start) ?? start
                return calendar.date(byAdding: .day, value: -1, to: next) ?? start
            default: return start
            }
        }
    }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    static let units: [String: Calendar.Component] = [
        "second": .second, "minute": .minute, "hour": .hour, "day": .day, "month": .month, "year": .year,
    ]

    /// From a matcher object such as `{"before": "now +3 days", "truncateExpected": "first day of month"}`.
    init(_ comparison: Comparison, _ spec: JSONValue, now: Date, context: String) throws {
        self.comparison = comparison
        guard let text = spec[comparison.rawValue]?.stringValue else {
            throw MatcherError(description: "\(context): \(comparison.rawValue) needs a date-time or now")
        }
        var expected: Date
        let lower = text.trimmingCharacters(in: .whitespaces).lowercased()
        if lower.hasPrefix("now") {
            expected = now
            let offset = lower.dropFirst(3).trimmingCharacters(in: .whitespaces)
            if !offset.isEmpty {
                guard let shifted = Self.shift(now, by: offset) else {
                    throw MatcherError(description: "\(context): '\(text)': expected an offset like now +3 days")
                }
                expected = shifted
            }
        } else {
            guard let parsed = Self.parse(text, format: nil) else {
                throw MatcherError(description: "\(context): '\(text)' is not a date-time")
            }
            expected = parsed
        }
        if let amount = spec["expectedOffset"]?.stringValue, let unit = spec["expectedOffsetUnit"]?.stringValue {
            guard let shifted = Self.shift(expected, by: "\(amount) \(unit)") else {
                throw MatcherError(description: "\(context): expectedOffset \(amount) \(unit) is not an offset")
            }
            expected = shifted
        }
        if let name = spec["truncateExpected"]?.stringValue {
            guard let truncation = Truncation(rawValue: name.lowercased()) else {
                throw MatcherError(
                    description: "\(context): truncateExpected '\(name)' is not a truncation WireMock knows")
            }
            expected = truncation.apply(expected)
        }
        self.expected = expected
        if let name = spec["truncateActual"]?.stringValue {
            guard let truncation = Truncation(rawValue: name.lowercased()) else {
                throw MatcherError(
                    description: "\(context): truncateActual '\(name)' is not a truncation WireMock knows")
            }
            truncateActual = truncation
        } else {
            truncateActual = nil
        }
        if let format = spec["actualFormat"]?.stringValue {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            // Java's and ICU's patterns agree on the common letters (yyyy MM dd HH mm ss SSS).
            formatter.dateFormat = format.replacingOccurrences(of: "uuuu", with: "yyyy")
            actualFormat = formatter
        } else {
            actualFormat = nil
        }
    }

    /// `+3 days`, `-1 month`, `10 seconds`.
    static func shift(_ date: Date, by offset: String) -> Date? {
        let parts = offset.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, let amount = Int(parts[0].replacingOccurrences(of: "+", with: "")) else { return nil }
        var unit = parts[1].lowercased()
        if unit.hasSuffix("s") { unit.removeLast() }
        guard let component = units[unit] else { return nil }
        return calendar.date(byAdding: component, value: amount, to: date)
    }

    /// ISO 8601 with or without a zone or a time (no zone: UTC), RFC 1123, or `format`.
    static func parse(_ text: String, format: DateFormatter?) -> Date? {
        let value = text.trimmingCharacters(in: .whitespaces)
        if let format { return format.date(from: value) }
        for style in [
            Date.ISO8601FormatStyle(includingFractionalSeconds: true), Date.ISO8601FormatStyle(),
        ] {
            if let date = try? Date(value, strategy: style) { return date }
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for pattern in [
            "yyyy-MM-dd'T'HH:mm:ss.SSSSSS", "yyyy-MM-dd'T'HH:mm:ss.SSS", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm",
            "yyyy-MM-dd", "EEE, dd MMM yyyy HH:mm:ss zzz",
        ] {
            formatter.dateFormat = pattern
            if let date = formatter.date(from: value) { return date }
        }
        return nil
    }

    func matches(_ value: String?) -> Bool {
        guard let value, var actual = Self.parse(value, format: actualFormat) else { return false }
        if let truncateActual { actual = truncateActual.apply(actual) }
        switch comparison {
        case .before: return actual < expected
        case .after: return actual > expected
        case .equalToDateTime: return actual == expected
        }
    }
}
