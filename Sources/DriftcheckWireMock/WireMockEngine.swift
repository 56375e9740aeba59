import DriftcheckCore
import Foundation

/// WireMock mappings evaluated in-process, following WireMock 2.x's matching and response
/// rules: no Java needed. Built for replay: one request at a time, in recorded order.
// Unchecked: the stubs are fixed after init; scenario states, used stubs, diagnostics and the
// file cache change only under `lock`.
public final class WireMockEngine: @unchecked Sendable {
    public struct Stub {
        public var index: Int
        public var file: String
        public var mapping: JSONValue
        public var priority: Int
        public var method: String
        var matcher: RequestMatcher
        var response: JSONValue
        var scenario: String?
        var requiredState: String?
        var newState: String?

        /// `METHOD /template`: the declared template, or the exact path templated by `catalog`.
        public func endpoint(in catalog: EndpointCatalog) -> String {
            let method = self.method == "ANY" ? "ANY" : self.method
            if let route = matcher.route { return "\(method) \(route.template)" }
            return "\(method) \(catalog.templatePath(method: method, path: matcher.exactPath ?? "/"))"
        }
    }

    public private(set) var stubs: [Stub] = []
    public private(set) var diagnostics: [Diagnostic] = []
    /// Stubs that answered at least one request.
    public private(set) var used: Set<Int> = []
    private var scenarioStates: [String: String] = [:]
    /// Matchers that counted as matched only because the recorded value was redacted, for --explain.
    public private(set) var explanations: [String] = []
    private var explanationKeys: Set<String> = []
    private var tieKeys: Set<String> = []
    /// `bodyFileName` contents, read and checked once.
    private var files: [String: Result<Data, BodyFileRefused>] = [:]
    private let bodyFiles: BodyFiles
    private let service: String
    /// The clock date-time matchers' `now` reads.
    private let now: Date
    private let lock = NSLock()

    /// One mapping file as read: its path (named in diagnostics) and its bytes.
    public struct MappingFile: Sendable {
        public var path: String
        public var data: Data
        public init(path: String, data: Data) {
            self.path = path
            self.data = data
        }
    }

    /// Reads a `bodyFileName` by name.
    public typealias BodyFiles = @Sendable (String) -> Result<Data, BodyFileRefused>

    /// The engine over mapping files already read, in load order (later ones win ties), with
    /// `files` answering `bodyFileName`: no disk of its own. Each file holds `//` and `/* */`
    /// comments as WireMock allows, and one mapping or `{"mappings": [...]}`.
    public init(mappings: [MappingFile], files: @escaping BodyFiles, service: String, now: Date = Date()) throws {
        self.service = service
        self.now = now
        bodyFiles = files
        for file in mappings {
            let document: JSONValue
            do {
                document = try JSONValue.parse(JSONComments.stripped(file.data))
            } catch {
                throw MockConfigurationError("\(file.path): \(error)")
            }
            let list: [JSONValue]
            if case .array(let several)? = document["mappings"] { list = several } else { list = [document] }
            for mapping in list { try add(mapping, file: file.path) }
        }
    }

    private func add(_ mapping: JSONValue, file: String) throws {
        guard case .object = mapping, let request = mapping["request"], case .object = request else {
            throw MockConfigurationError("\(file): a mapping needs a \"request\" object")
        }
        let response = mapping["response"] ?? .object([])
        guard case .object = response else { throw MockConfigurationError("\(file): \"response\" must be an object") }
        let matcher: RequestMatcher
        do {
            matcher = try RequestMatcher(request, now: now)
        } catch let error as MatcherError {
            throw MockConfigurationError("\(file): \(error.description)")
        }
        let unsupported = matcher.unsupportedParts
        if !unsupported.isEmpty {
            diagnostics.append(
                Diagnostic(
                    service: service,
                    message:
                        "\(file): uses \(unsupported.joined(separator: ", ")), which driftcheck's WireMock engine cannot evaluate; requests it might answer are not compared"
                ))
        }
        var priority = 5
        if case .number(let text)? = mapping["priority"], let value = Int(text) { priority = value }
        stubs.append(
            Stub(
                index: stubs.count, file: file, mapping: mapping, priority: priority, method: matcher.method,
                matcher: matcher, response: response,
                scenario: mapping["scenarioName"]?.stringValue,
                requiredState: mapping["requiredScenarioState"]?.stringValue,
                newState: mapping["newScenarioState"]?.stringValue))
    }

    /// WireMock's answer to `request`: the highest-priority matching stub (lowest number; the
    /// most recently loaded among equals), or `.unmatched`.
    public func respond(to request: RecordedRequest) -> MockAnswer {
        lock.lock()
        defer { lock.unlock() }
        let incoming = IncomingRequest(request)
        var best: Stub?
        var bestOutcome: RequestMatcher.Outcome?
        var nearest: (stub: Stub, failedOn: String)?
        var undecided: (stub: Stub, parts: [String])?
        for stub in stubs {
            if let scenario = stub.scenario, let required = stub.requiredState,
                (scenarioStates[scenario] ?? "Started") != required
            {
                continue
            }
            let outcome = stub.matcher.evaluate(incoming)
            if !outcome.undecided.isEmpty, outcome.failedOn == nil,
                undecided == nil || stub.priority <= undecided!.stub.priority
            {
                undecided = (stub, outcome.undecided)
                continue
            }
            guard outcome.matched else {
                // The nearest miss: the right method and URL, failing on a later part.
                if let failedOn = outcome.failedOn, failedOn != "method", failedOn != "url",
                    nearest == nil || stub.priority <= nearest!.stub.priority
                {
                    nearest = (stub, failedOn)
                }
                continue
            }
            if let current = best, current.priority < stub.priority { continue }
            // Among equal priorities the most recently loaded wins, as in WireMock; across files
            // WireMock's load order is the filesystem's listing order, so say which one we chose.
            if let current = best, current.priority == stub.priority, current.file != stub.file {
                let key = "\(current.file)\u{0}\(stub.file)"
                if tieKeys.insert(key).inserted {
                    diagnostics.append(
                        Diagnostic(
                            service: service,
                            message:
                                "\(current.file) and \(stub.file) both match \(request.method) \(request.target) at priority \(stub.priority); WireMock's choice depends on the order its filesystem lists them, driftcheck used the latter (give one a priority to decide)"
                        ))
                }
            }
            best = stub
            bestOutcome = outcome
        }
        // A mapping the engine cannot evaluate might have answered: better no comparison than a wrong one.
        if let undecided, best == nil || undecided.stub.priority <= best!.priority {
            used.insert(undecided.stub.index)
            return .cannotEvaluate(
                "\((undecided.stub.file as NSString).lastPathComponent) uses \(undecided.parts.joined(separator: ", ")), which driftcheck's WireMock engine cannot evaluate"
            )
        }
        guard let stub = best else {
            var reason = "no WireMock mapping matched \(request.method) \(request.target)"
            if let nearest {
                reason +=
                    "; nearest: \((nearest.stub.file as NSString).lastPathComponent) failed on \(nearest.failedOn)"
            }
            let redacted = StandIns.redactedParts(request)
            if !redacted.isEmpty {
                reason += " (the request carried redacted values: \(redacted.joined(separator: ", ")))"
            }
            return .unmatched(reason)
        }
        for part in bestOutcome?.redacted ?? [] {
            let line =
                "\((stub.file as NSString).lastPathComponent): \(part) matched a redacted value (\(request.method) \(request.target))"
            if explanationKeys.insert("\(stub.index) \(part)").inserted { explanations.append(line) }
        }
        used.insert(stub.index)
        if let scenario = stub.scenario, let next = stub.newState { scenarioStates[scenario] = next }
        var diagnostics: [String] = []
        let builder = ResponseBuilder(
            read: { name in
                if let cached = self.files[name] { return cached }
                let loaded = self.bodyFiles(name)
                self.files[name] = loaded
                return loaded
            })
        let response = builder.build(stub.response, for: incoming, diagnostics: &diagnostics)
        for message in diagnostics where !self.diagnostics.contains(where: { $0.message.hasSuffix(message) }) {
            self.diagnostics.append(Diagnostic(service: service, message: "\(stub.file): \(message)"))
        }
        return .response(response)
    }

    /// The routes these mappings declare by pattern or template: they name the endpoints of the
    /// recordings they match.
    public var declaredRoutes: [DeclaredRoute] { stubs.compactMap(\.matcher.route) }

    /// Stubs no request matched: routes no recording exercises.
    public var unusedStubs: [Stub] {
        lock.lock()
        defer { lock.unlock() }
        return stubs.filter { !used.contains($0.index) }
    }

    public var engineDiagnostics: [Diagnostic] {
        lock.lock()
        defer { lock.unlock() }
        return diagnostics
    }
}

/// WireMock reads mapping files with comments allowed (Jackson's ALLOW_COMMENTS).
enum JSONComments {
    /// `data` with `//` and `/* */` comments outside strings replaced by spaces (newlines kept,
    /// so parse errors still name the right line).
    static func stripped(_ data: Data) -> Data {
        guard data.contains(0x2F) else { return data }
        var output = [UInt8](data)
        var index = 0
        var inString = false
        while index < output.count {
            let byte = output[index]
            if inString {
                if byte == 0x5C {
                    index += 2
                    continue
                }
                if byte == 0x22 { inString = false }
                index += 1
                continue
            }
            if byte == 0x22 {
                inString = true
            } else if byte == 0x2F, index + 1 < output.count, output[index + 1] == 0x2F {
                while index < output.count && output[index] != 0x0A {
                    output[index] = 0x20
                    index += 1
                }
                continue
            } else if byte == 0x2F, index + 1 < output.count, output[index + 1] == 0x2A {
                output[index] = 0x20
                output[index + 1] = 0x20
                index += 2
                while index < output.count
                    && !(output[index] == 0x2A && index + 1 < output.count && output[index + 1] == 0x2F)
                {
                    if output[index] != 0x0A { output[index] = 0x20 }
                    index += 1
                }
                if index < output.count {
                    output[index] = 0x20
                    if index + 1 < output.count { output[index + 1] = 0x20 }
                    index += 2
                }
                continue
            }
            index += 1
        }
        return Data(output)
    }
}
