import Foundation

/// A moment given on the command line (`--since`): a date (`2026-11-01`, midnight UTC), a
/// date and time in ISO 8601 (`2026-11-01T09:30:00Z`), or an age counted back from `now`
/// (`90m`, `12h`, `7d`, `2w`).
public enum PointInTime {
    public static func parse(_ text: String, now: Date) -> Date? {
        let text = text.trimmingCharacters(in: .whitespaces)
        if let unit = text.last, let count = Double(text.dropLast()), count >= 0, count.isFinite {
            let seconds: Double? =
                switch unit {
                case "s": 1
                case "m": 60
                case "h": 3600
                case "d": 86_400
                case "w": 604_800
                default: nil
                }
            if let seconds { return now.addingTimeInterval(-count * seconds) }
        }
        let dateOnly = ISO8601DateFormatter()
        dateOnly.formatOptions = [.withFullDate]
        if text.count == 10, let date = dateOnly.date(from: text) { return date }
        let full = ISO8601DateFormatter()
        if let date = full.date(from: text) { return date }
        full.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return full.date(from: text)
    }
}
