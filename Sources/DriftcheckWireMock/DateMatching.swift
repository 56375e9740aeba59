import DriftcheckCore
import Foundation

/// WireMock's date-time matchers: `before`, `after`, `equalToDateTime`, with an expected value
/// that is a literal or `now` with an offset (`now +3 days`, or `expectedOffset` and
/// `expectedOffsetUnit`), truncation of either side (`first day of month`…) and `actualFormat`.
/// Zones as WireMock treats them: two zoned values compare as instants; a local expected value
/// compares with the request's wall-clock time; truncation happens in the value's own offset.
struct DateMatcher {
    /// A parsed value: its instant, and its wall-clock time read as if it were UTC.
    struct Moment {
        var instant: Date
        /// Seconds east of UTC; nil for a value written without a zone.
        var offset: Int?
        var wallClock: Date { instant.addingTimeInterval(Double(offset ?? 0)) }
        var zoned: Bool { offset != nil }

        /// Truncation in the value's own offset, as `java.time` does it on a zoned value.
        func truncated(_ truncation: Truncation) -> Moment {
            let local = truncation.apply(wallClock)
            return Moment(instant: local.addingTimeInterval(-Double(offset ?? 0)), offset: offset)
        }
    }

    enum Comparison: String {
        case before, after, equalToDateTime
    }

    let comparison: Comparison
    /// The expected value, resolved against the engine's clock when the mapping loads.
    let expected: Moment
    let truncateActual: Truncation?
    let actualFormat: DateFormatter?
    /// `actualFormat: unix` (seconds) or `epoch` (milliseconds).
    let epochScale: Double?

    enum Truncation: String, CaseIterable {
        case firstSecondOfMinute = "first second of minute"
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
            case .firstSecondOfMinute:
                break
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
        let lower = text.trimmingCharacters(in: .whitespaces).lowercased()
        // `now`, `now +3 days`, or a bare offset `+3 days` are relative to the clock; truncation
        // applies to these only (a literal keeps its value), before the offset.
        let relative: String? =
            lower.hasPrefix("now") ? String(lower.dropFirst(3)) : (Self.shift(now, by: lower) != nil ? lower : nil)
        var truncation: Truncation?
        if let name = spec["truncateExpected"]?.stringValue {
            guard let known = Truncation(rawValue: name.lowercased()) else {
                throw MatcherError(
                    description: "\(context): truncateExpected '\(name)' is not a truncation WireMock knows")
            }
            truncation = known
        }
        if let relative {
            var base = now
            if let truncation { base = truncation.apply(base) }
            let offset = relative.trimmingCharacters(in: .whitespaces)
            if let amount = spec["expectedOffset"]?.stringValue, let unit = spec["expectedOffsetUnit"]?.stringValue {
                guard let shifted = Self.shift(base, by: "\(amount) \(unit)") else {
                    throw MatcherError(description: "\(context): expectedOffset \(amount) \(unit) is not an offset")
                }
                base = shifted
            } else if !offset.isEmpty {
                guard let shifted = Self.shift(base, by: offset) else {
                    throw MatcherError(description: "\(context): '\(text)': expected an offset like now +3 days")
                }
                base = shifted
            }
            expected = Moment(instant: base, offset: 0)
        } else {
            guard let parsed = Self.moment(text, format: nil) else {
                throw MatcherError(description: "\(context): '\(text)' is not a date-time")
            }
            expected = parsed
        }
        if let name = spec["truncateActual"]?.stringValue {
            guard let known = Truncation(rawValue: name.lowercased()) else {
                throw MatcherError(
                    description: "\(context): truncateActual '\(name)' is not a truncation WireMock knows")
            }
            truncateActual = known
        } else {
            truncateActual = nil
        }
        let format = spec["actualFormat"]?.stringValue
        epochScale = format == "unix" ? 1 : format == "epoch" ? 1_000 : nil
        if let format, epochScale == nil {
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

    /// The instant of `text`, for callers that need no zone (fuzzing, offsets).
    static func parse(_ text: String, format: DateFormatter?) -> Date? { moment(text, format: format)?.instant }

    /// ISO 8601 with an offset or `Z` (zoned), without one or without a time (local), RFC 1123
    /// and its relatives (zoned), or `format` (local).
    static func moment(_ text: String, format: DateFormatter?) -> Moment? {
        var value = text.trimmingCharacters(in: .whitespaces)
        // `2021-06-14T12:13:14+02:00[Europe/Paris]`: the bracketed region adds nothing to the offset.
        if value.hasSuffix("]"), let open = value.lastIndex(of: "[") { value = String(value[..<open]) }
        if let format {
            guard let date = format.date(from: value) else { return nil }
            return Moment(instant: date, offset: nil)
        }
        // ISO 8601 is read by hand: most values are, and a DateFormatter per value is slow.
        if let iso = iso8601(value) { return iso }
        if value.count > 64 || !value.contains(" ") { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for pattern in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = pattern
            if let date = formatter.date(from: value) { return Moment(instant: date, offset: 0) }
        }
        return nil
    }

    /// `yyyy-MM-dd`, optionally `THH:mm[:ss[.fraction]]`, optionally `Z` or `±hh:mm`.
    static func iso8601(_ value: String) -> Moment? {
        let bytes = Array(value.utf8)
        var index = 0
        func number(_ digits: Int) -> Int? {
            guard index + digits <= bytes.count else { return nil }
            var result = 0
            for byte in bytes[index..<(index + digits)] {
                guard ASCII.isDigit(byte) else { return nil }
                result = result * 10 + Int(byte - 0x30)
            }
            index += digits
            return result
        }
        func expect(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect(0x2D), let month = number(2), expect(0x2D), let day = number(2),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour = 0
        var minute = 0
        var second = 0.0
        if index < bytes.count, bytes[index] == 0x54 || bytes[index] == 0x74 {
            index += 1
            guard let h = number(2), expect(0x3A), let m = number(2), h < 24, m < 60 else { return nil }
            (hour, minute) = (h, m)
            if expect(0x3A) {
                guard let s = number(2), s < 61 else { return nil }
                second = Double(s)
                if expect(0x2E) {
                    var scale = 0.1
                    let start = index
                    while index < bytes.count, ASCII.isDigit(bytes[index]) {
                        second += Double(bytes[index] - 0x30) * scale
                        scale /= 10
                        index += 1
                    }
                    guard index > start else { return nil }
                }
            }
        }
        var offset: Int?
        if index < bytes.count {
            if bytes[index] == 0x5A || bytes[index] == 0x7A, index + 1 == bytes.count {
                offset = 0
                index += 1
            } else if bytes[index] == 0x2B || bytes[index] == 0x2D {
                let sign = bytes[index] == 0x2D ? -1 : 1
                index += 1
                guard let h = number(2) else { return nil }
                _ = expect(0x3A)
                guard let m = number(2) else { return nil }
                offset = sign * (h * 3_600 + m * 60)
            }
        }
        guard index == bytes.count else { return nil }
        // Days from 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let wallClock = Double(days) * 86_400 + Double(hour * 3_600 + minute * 60) + second
        return Moment(instant: Date(timeIntervalSince1970: wallClock - Double(offset ?? 0)), offset: offset)
    }

    func matches(_ value: String?) -> Bool {
        guard let value else { return false }
        var actual: Moment
        if let epochScale {
            guard let number = Double(value.trimmingCharacters(in: .whitespaces)) else { return false }
            actual = Moment(instant: Date(timeIntervalSince1970: number / epochScale), offset: 0)
        } else {
            guard let parsed = Self.moment(value, format: actualFormat) else { return false }
            actual = parsed
        }
        if let truncateActual {
            // WireMock fails the whole request (500) on a value without a zone here; no match is the nearest.
            guard actual.zoned else { return false }
            actual = actual.truncated(truncateActual)
        }
        // A local expected value compares wall clocks; otherwise instants (a local actual read as UTC).
        let left = expected.zoned ? actual.instant : actual.wallClock
        let right = expected.zoned ? expected.instant : expected.wallClock
        switch comparison {
        case .before: return left < right
        case .after: return left > right
        case .equalToDateTime: return left == right
        }
    }
}
