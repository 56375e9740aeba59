import DriftcheckCore

/// Bad usage, bad configuration or unreadable input: exit 2 with one line naming the culprit.
public struct UsageError: Error, CustomStringConvertible {
    public var description: String

    /// Control characters (from file contents quoted in the message) are shown escaped, so the
    /// message stays one line whatever the input held.
    public init(_ description: String) { self.description = OneLine.escaped(description) }
}
