import Foundation
import Yams

/// The one YAML loader for driftcheck's files (`driftcheck.yml`, `mock.yml`): YAML composed,
/// then converted by us. `Yams.load` traps on a mapping key that is not a scalar
/// (`{[a]: 1}`), which fuzzing found; aliases are refused, depth and size are bounded, so a
/// hostile file is an error naming it, never a crash.
public enum SafeYAML {
    /// Why a file was refused; `description` starts with the file's path.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public static let maximumDepth = 64
    public static let maximumValues = 100_000

    /// Plain values: `[String: Any]`, `[Any]` and scalars as Yams resolves them; nil for an empty document.
    public static func load(_ text: String, path: String) throws(Failure) -> Any? {
        do {
            var budget = maximumValues
            return try Yams.compose(yaml: text).map { try plain($0, path: path, depth: 0, budget: &budget) }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "\(path): invalid YAML (\("\(error)".split(separator: "\n").first ?? ""))")
        }
    }

    static func plain(_ node: Node, path: String, depth: Int, budget: inout Int) throws(Failure) -> Any {
        guard depth < maximumDepth else {
            throw Failure(description: "\(path): nested deeper than \(maximumDepth) levels")
        }
        budget -= 1
        guard budget >= 0 else {
            throw Failure(description: "\(path): more than 100,000 values once aliases are expanded")
        }
        switch node {
        case .scalar:
            return node.any
        case .sequence(let sequence):
            var items: [Any] = []
            for item in sequence { items.append(try plain(item, path: path, depth: depth + 1, budget: &budget)) }
            return items
        case .mapping(let mapping):
            var result: [String: Any] = [:]
            for (key, value) in mapping {
                guard case .scalar(let scalar) = key else {
                    throw Failure(description: "\(path): line \((key.mark?.line ?? 0)): a key must be a plain name")
                }
                result[scalar.string] = try plain(value, path: path, depth: depth + 1, budget: &budget)
            }
            return result
        case .alias:
            throw Failure(description: "\(path): YAML aliases are not supported here")
        }
    }
}
