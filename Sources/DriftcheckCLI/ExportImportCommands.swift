import ArgumentParser
import DriftcheckCore
import DriftcheckGRPC
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
        // The store is redacted already; redacting again costs little and guards older stores.
        let sanitizer = ExchangeSanitizer(redaction: try configOptions.redaction())
        let names = try store.services().map(\.name).filter { service.isEmpty || service.contains($0) }
        var catalogs: [String: EndpointCatalog] = [:]
        for name in names { catalogs[name] = try store.catalog(service: name) }
        if let har { try writeHAR(har, store: store, services: names, catalogs: catalogs, sanitizer: sanitizer) }
        if let wiremock {
            for name in names.sorted() {
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
                // Mappings are inferred from all of a service's exchanges: one service in memory at a time.
                var exchanges: [Exchange] = []
                try store.forEachPage(filter: TransferFilter(services: [name]), includeFailures: false) {
                    exchanges += $0.map(sanitizer.sanitize)
                }
                exchanges = try grpcStubs(exchanges, service: name, store: store, directory: directory)
                let mappings = WireMockExport.mappings(for: exchanges, catalog: catalogs[name] ?? .heuristic)
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

    /// gRPC calls as WireMock's gRPC extension stubs them (JSON in, JSON out, the descriptors in
    /// `NAME/grpc/recorded.dsc`); calls it cannot stub are left out, and said so.
    func grpcStubs(_ exchanges: [Exchange], service: String, store: any RecordingStore, directory: String) throws
        -> [Exchange]
    {
        let calls = exchanges.filter { GRPC.isGRPC($0.request.headers) }
        guard !calls.isEmpty else { return exchanges }
        let sets = try store.descriptorSets()
        guard let schema = DescriptorSets.schema(merging: sets) else {
            Terminal.warning(
                "\(service): \(calls.count) gRPC calls not exported: no descriptors were recorded (record with --proto-descriptors, or from a server with reflection)"
            )
            return exchanges.filter { !GRPC.isGRPC($0.request.headers) }
        }
        let grpc = (directory as NSString).deletingLastPathComponent + "/grpc"
        do {
            try FileManager.default.createDirectory(atPath: grpc, withIntermediateDirectories: true)
            // Concatenated FileDescriptorSets are one set: its files are a repeated field.
            try sets.reduce(Data(), +).write(to: URL(fileURLWithPath: grpc + "/recorded.dsc"))
        } catch {
            throw UsageError("--wiremock: cannot write \(grpc)/recorded.dsc")
        }
        let stubs = calls.compactMap { GRPC.stubExchange($0, schema: schema) }
        if stubs.count < calls.count {
            Terminal.warning(
                "\(service): \(calls.count - stubs.count) gRPC calls not exported: streamed or compressed messages (WireMock's gRPC extension answers one message)"
            )
        }
        return exchanges.filter { !GRPC.isGRPC($0.request.headers) } + stubs
    }

    /// Streams the HAR page by page, to stdout or to a temporary file renamed into place.
    func writeHAR(
        _ har: String, store: any RecordingStore, services: [String], catalogs: [String: EndpointCatalog],
        sanitizer: ExchangeSanitizer
    ) throws {
        let temporary = har == "-" ? nil : har + ".tmp-\(getpid())"
        let output: FileHandle
        if let temporary {
            guard FileManager.default.createFile(atPath: temporary, contents: nil),
                let handle = FileHandle(forWritingAtPath: temporary)
            else { throw UsageError("--har \(har): cannot write the file") }
            output = handle
        } else {
            output = FileHandle.standardOutput
        }
        var writer = HAR.Writer(creatorVersion: driftcheckVersion)
        do {
            if !services.isEmpty {
                try store.forEachPage(filter: TransferFilter(services: services), includeFailures: false) { page in
                    var text = ""
                    for exchange in page.map(sanitizer.sanitize) {
                        text += writer.add(
                            exchange, endpoint: catalogs[exchange.service]?.endpoint(of: exchange.request))
                    }
                    try output.write(contentsOf: Data(text.utf8))
                }
            }
            // The schemas that name the gRPC messages travel with them.
            let sets = writer.entries > 0 ? try store.descriptorSets() : []
            try output.write(contentsOf: Data(writer.end(descriptorSets: sets).utf8))
            if let temporary {
                try output.close()
                guard rename(temporary, har) == 0 else { throw UsageError("--har \(har): cannot write the file") }
            }
        } catch let error as StoreError {
            if let temporary { unlink(temporary) }
            throw error
        } catch {
            if let temporary { unlink(temporary) }
            throw UsageError("--har \(har): cannot write the file")
        }
        if temporary != nil { Terminal.say("wrote \(writer.entries) exchanges to \(har)") }
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
        let contents = try files.map { try Self.read($0, service: service) }
        let exchanges = contents.flatMap(\.exchanges)
        let store = try storeOptions.open()
        for file in contents { try Self.addDescriptorSets(of: file, to: store) }
        let session = try store.beginSession(
            mode: "import", command: files.joined(separator: " "), toolVersion: driftcheckVersion)
        // Foreign HAR files hold live credentials: redact before anything is written.
        try store.insert(exchanges.map(ExchangeSanitizer(redaction: policy).sanitize), session: session)
        try store.endSession(session)
        try store.close()
        Terminal.say("imported \(exchanges.count) exchanges into \(store.location)")
    }

    /// The gRPC schemas a driftcheck HAR carries, kept with the recordings (one that does not
    /// parse is left out: its calls are then decoded from the wire alone).
    static func addDescriptorSets(of contents: HAR.Contents, to store: any RecordingStore) throws {
        for set in contents.descriptorSets where (try? DescriptorSets.schema(set)) != nil {
            try store.addDescriptorSet(set)
        }
    }

    static func read(_ path: String, service: String?) throws -> HAR.Contents {
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
        return contents
    }
}
