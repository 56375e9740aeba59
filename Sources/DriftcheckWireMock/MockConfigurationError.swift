import DriftcheckCore
import Foundation

/// A problem with the mocks directory or a file in it: exit 2, naming the file.
public struct MockConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// Quoted file contents cannot break the one line: control characters are shown escaped.
    public init(_ description: String) { self.description = OneLine.escaped(description) }
}
