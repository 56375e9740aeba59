import ArgumentParser
import DriftcheckCore
import DriftcheckMocks
import DriftcheckStore
import Foundation

/// `driftcheck export --har FILE` / `--wiremock MOCKS`.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write recordings as a HAR 1.2 contract file, or as WireMock mappings (mock refresh).")

    @OptionGroup var storeOptions: StoreOptions

    @OptionGroup var configOptions: ConfigOptions

    @Option(name: .long, help: ArgumentHelp("Write a HAR 1.2 file (- for stdout).", valueName: "file"))
    var har: String?

    @Option(name: .long, help: ArgumentHelp("Write MOCKS/NAME/mappings/ for each service.", valueName: "mocks"))
    var wiremock: String?

    @Option(name: .long, help: ArgumentHelp("Only this service (repeatable).", valueName: "name"))
    var service: [String] = []

    func run() async throws {
        guard har != nil || wiremock != nil else { throw UsageError("export needs --har FILE or --wiremock MOCKS") }
        let store = try storeOptions.openExisting()
        var exchanges = try store.exchanges(includeFailures: false)
        if !service.isEmpty { exchanges = exchanges.filter { service.contains($0.service) } }
        // The store is redacted already; redacting again costs little and guards older stores.
        let policy = try configOptions.redaction()
        exchanges = exchanges.map(ExchangeSanitizer(redaction: policy).sanitize)
        var catalogs: [String: EndpointCatalog] = [:]
        for name in Set(exchanges.map(\.service)) { catalogs[name] = try store.catalog(service: name) }
        if let har {
            let text = HAR.encode(exchanges, creatorVersion: driftcheckVersion) {
                catalogs[$0.service]?.endpoint(of: $0.request)
            }
            if har == "-" {
                print(text, terminator: "")
            } else {
                do { try text.write(toFile: har, atomically: true, encoding: .utf8) } catch {
                    throw UsageError("--har \(har): cannot write the file")
                }
                Terminal.say("wrote \(exchanges.count) exchanges to \(har)")
            }
        }
        if let wiremock {
            for name in Array(Set(exchanges.map(\.service))).sorted() {
                guard ServiceName.isValid(name) else {
                    Terminal.warning("service '\(name)' is not a usable directory name; skipped")
                    continue
                }
                let directory = (wiremock as NSString).appendingPathComponent("\(name)/mappings")
                do {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                } catch {
                    throw UsageError("--wiremock \(wiremock): cannot create \(directory)")
                }
                let mappings = WireMockExport.mappings(
                    for: exchanges.filter { $0.service == name }, catalog: catalogs[name] ?? .heuristic)
                for (file, mapping) in mappings {
                    let path = (directory as NSString).appendingPathComponent(file)
                    do {
                        try (mapping.prettyPrinted() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
                    } catch {
                        throw UsageError("--wiremock: cannot write \(path)")
                    }
                }
                Terminal.say("wrote \(mappings.count) mappings to \(directory)")
            }
        }
    }
}

/// `driftcheck import FILE.har`.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Add the exchanges of HAR files (driftcheck, devtools, mitmproxy) to the store.")

    @OptionGroup var storeOptions: StoreOptions

    @OptionGroup var configOptions: ConfigOptions

    @Argument(help: ArgumentHelp("HAR files to import.", valueName: "file.har"))
    var files: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Record entries under this service (default: _service, else the host).", valueName: "name"))
    var service: String?

    func run() async throws {
        guard !files.isEmpty else { throw UsageError("import needs at least one HAR file") }
        if let service, !ServiceName.isValid(service) {
            throw UsageError("--service '\(service)': not a valid service name (letters, digits, - _ .)")
        }
        let policy = try configOptions.redaction()
        let exchanges = try files.flatMap { try Self.read($0, service: service) }
        let store = try storeOptions.open()
        let session = try store.beginSession(
            mode: "import", command: files.joined(separator: " "), toolVersion: driftcheckVersion)
        // Foreign HAR files hold live credentials: redact before anything is written.
        try store.insert(exchanges.map(ExchangeSanitizer(redaction: policy).sanitize), session: session)
        try store.endSession(session)
        try store.close()
        Terminal.say("imported \(exchanges.count) exchanges into \(store.location)")
    }

    static func read(_ path: String, service: String?) throws -> [Exchange] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("\(path): cannot read the file")
        }
        let contents: HAR.Contents
        do {
            contents = try HAR.read(data, service: service)
        } catch let error as HAR.ReadError {
            throw UsageError("\(path): \(error.description)")
        }
        if !contents.skipped.isEmpty {
            let count = contents.skipped.count
            Terminal.warning(
                "\(path): skipped \(count) entr\(count == 1 ? "y" : "ies") that cannot be imported (\(contents.skipped.prefix(3).joined(separator: "; "))\(count > 3 ? "; …" : ""))"
            )
        }
        return contents.exchanges
    }
}
