import DriftcheckCore
@_exported import DriftcheckWireMock
import DriftcheckYAML
import Foundation

/// `MOCKS/NAME/mock.yml`: an already running mock (`url`), or one to start (`command`).
public struct MockProcessSpec: Sendable, Equatable {
    public var url: String
    public var command: String?
    /// Path polled until the mock answers; `/` by default.
    public var ready: String
    /// Seconds to wait for readiness.
    public var timeout: Double
    /// The directory the command runs in.
    public var directory: String

    public static func load(_ path: String) throws -> MockProcessSpec {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw MockConfigurationError("\(path): cannot read the file")
        }
        return try parse(text, path: path)
    }

    /// A `mock.yml`'s text; `path` names it in errors and gives the command's directory.
    public static func parse(_ text: String, path: String) throws -> MockProcessSpec {
        let node: Any?
        do { node = try SafeYAML.load(text, path: path) } catch { throw MockConfigurationError(error.description) }
        guard let map = node as? [String: Any] else {
            throw MockConfigurationError(
                "\(path): expected a mapping with url: (and optional command:, ready:, timeout:)")
        }
        let known: Set<String> = ["url", "command", "ready", "timeout"]
        if let unknown = map.keys.filter({ !known.contains($0) }).sorted().first {
            throw MockConfigurationError("\(path): unknown key '\(unknown)' (expected url, command, ready, timeout)")
        }
        guard let url = map["url"] as? String,
            UpstreamURL.parse(url.replacingOccurrences(of: "${PORT}", with: "1")) != nil
        else {
            throw MockConfigurationError(
                "\(path): url: must be an http://, https:// or h2c:// URL, e.g. http://127.0.0.1:3000")
        }
        if map["command"] != nil && !(map["command"] is String) {
            throw MockConfigurationError("\(path): command: must be a string")
        }
        var ready = (map["ready"] as? String) ?? "/"
        if !ready.hasPrefix("/") { ready = "/" + ready }
        let timeout: Double
        switch map["timeout"] {
        case nil: timeout = 30
        case let value as Int: timeout = Double(value)
        case let value as Double: timeout = value
        default: throw MockConfigurationError("\(path): timeout: must be a number of seconds")
        }
        guard timeout > 0 && timeout <= 3600 else {
            throw MockConfigurationError("\(path): timeout: expected seconds between 0 and 3600")
        }
        return MockProcessSpec(
            url: url, command: map["command"] as? String, ready: ready, timeout: timeout,
            directory: (path as NSString).deletingLastPathComponent)
    }
}

/// How one service's mock is reached.
public enum MockTarget: Sendable {
    /// An HTTP mock already running (`--mock NAME=URL` or `mock.yml` with only `url`).
    case running(url: String)
    /// A process driftcheck starts, waits for, and stops.
    case process(MockProcessSpec)
    /// WireMock mappings evaluated in-process.
    case wiremock(directory: String)
}

/// Reads `MOCKS/NAME/` directories: `mappings/` means WireMock, `mock.yml` a process or URL.
public enum MockDirectory {
    public static func load(_ root: String) throws -> [String: MockTarget] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MockConfigurationError("\(root): no such mocks directory")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
        } catch {
            throw MockConfigurationError("\(root): cannot list the directory")
        }
        var targets: [String: MockTarget] = [:]
        for name in names where !name.hasPrefix(".") {
            let directory = (root as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
                continue
            }
            let mockYml = (directory as NSString).appendingPathComponent("mock.yml")
            let mappings = (directory as NSString).appendingPathComponent("mappings")
            if FileManager.default.fileExists(atPath: mockYml) {
                let spec = try MockProcessSpec.load(mockYml)
                targets[name] = spec.command == nil ? .running(url: spec.url) : .process(spec)
            } else if FileManager.default.fileExists(atPath: mappings) {
                targets[name] = .wiremock(directory: directory)
            }
        }
        return targets
    }
}
