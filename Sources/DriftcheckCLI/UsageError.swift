/// Bad usage, bad configuration or unreadable input: exit 2 with one line naming the culprit.
public struct UsageError: Error, CustomStringConvertible {
    public var description: String

    /// Control characters (from file contents quoted in the message) are shown escaped, so the
    /// message stays one line whatever the input held.
    public init(_ description: String) {
        guard description.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            self.description = description
            return
        }
        var line = ""
        for scalar in description.unicodeScalars {
            switch scalar {
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                line += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: line.unicodeScalars.append(scalar)
            }
        }
        self.description = line
    }
}
