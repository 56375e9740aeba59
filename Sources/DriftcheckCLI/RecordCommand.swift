import ArgumentParser
import DriftcheckCA
import DriftcheckCore
import DriftcheckGRPC
import DriftcheckProcess
import DriftcheckProxy
import DriftcheckReplay
import DriftcheckStore
import Foundation
import NIOCore

/// `driftcheck record`: the recording proxy in reverse, forward or wrapped-command mode.
struct RecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Run the recording proxy until SIGINT/SIGTERM, or around a command.",
        discussion: """
            Reverse proxy:   driftcheck record --upstream orders=http://orders.shop:8080 --listen 127.0.0.1:9001
            Forward proxy:   driftcheck record --listen 127.0.0.1:8080   (clients set HTTP_PROXY)
            Wrapped command: driftcheck record --env-file e.env -- ./run-my-service
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(
        name: .long,
        help: ArgumentHelp(
            "With a postgres:// store: the local file exchanges wait in until the server has them (default .driftcheck/outbox-HASH.sqlite).",
            valueName: "path"))
    var outbox: String?

    @OptionGroup var configOptions: ConfigOptions

    @Option(name: .long, help: ArgumentHelp("A listen address HOST:PORT (repeatable).", valueName: "host:port"))
    var listen: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("A dependency NAME=URL[@HOST:PORT] to reverse-proxy (repeatable).", valueName: "name=url"))
    var upstream: [String] = []

    @Option(
        name: .customLong("env-file"),
        help: ArgumentHelp(
            "Environment file (as `telepresence intercept --env-file` writes) to add to the command's environment.",
            valueName: "file"))
    var envFile: String?

    @Option(
        name: .customLong("env-syntax"),
        help: ArgumentHelp(
            "The --env-file's syntax, as given to telepresence: docker, compose, sh, sh:export, csh, csh:export, ps, ps:export, cmd, json (default: detected).",
            valueName: "syntax"))
    var envSyntax: EnvSyntax?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Reach HOST at ADDR (as curl's --resolve): cluster names from a laptop outside the cluster's DNS (repeatable).",
            valueName: "host=addr"))
    var resolve: [String] = []

    @Option(
        name: .customLong("env-json"),
        help: ArgumentHelp("A JSON environment file (telepresence intercept --env-json).", valueName: "file"))
    var envJSON: String?

    @Option(
        name: .customLong("rewrite-env"),
        help: ArgumentHelp("Also rewrite this variable when its URL points at loopback (repeatable).", valueName: "var")
    )
    var rewriteEnv: [String] = []

    @Option(
        name: .customLong("redact-header"),
        help: ArgumentHelp("Another header to redact (repeatable).", valueName: "name"))
    var redactHeader: [String] = []

    @Option(
        name: .customLong("redact-field"),
        help: ArgumentHelp("A JSON field name or JSONPath ($.user.ssn) to redact (repeatable).", valueName: "field"))
    var redactField: [String] = []

    @Option(
        name: .customLong("max-body"),
        help: ArgumentHelp("Body bytes stored per message, e.g. 1MiB, 64k.", valueName: "size"))
    var maxBody: String = "1MiB"

    @Option(
        name: .customLong("upstream-timeout"),
        help: ArgumentHelp(
            "Seconds an upstream may stay silent before the client gets 504 (a gRPC call: its own deadline when longer; an event stream: none once its head came).",
            valueName: "seconds"))
    var upstreamTimeout: Double = 30

    @Option(
        name: .customLong("connect-timeout"),
        help: ArgumentHelp("Seconds to connect to an upstream before the client gets 504.", valueName: "seconds"))
    var connectTimeout: Double = 5

    @Option(
        name: .customLong("idle-timeout"),
        help: ArgumentHelp("Seconds a client connection may idle before it is closed.", valueName: "seconds"))
    var idleTimeout: Double = 60

    @Flag(name: .customLong("insecure-upstream"), help: "Accept self-signed https:// upstream certificates.")
    var insecureUpstream = false

    @Option(
        name: .customLong("upstream-ca"),
        help: ArgumentHelp(
            "Another CA (PEM file) to verify https:// upstreams with, beside the system's (repeatable).",
            valueName: "file"))
    var upstreamCA: [String] = []

    @Option(
        name: .customLong("intercept-tls"),
        help: ArgumentHelp(
            "Record HTTPS to hosts matching this glob (*.stripe.com) through the local CA (repeatable).",
            valueName: "pattern"))
    var interceptTLS: [String] = []

    @OptionGroup var caOptions: CAOptions

    @Option(
        name: .customLong("proto-descriptors"),
        help: ArgumentHelp(
            "A FileDescriptorSet (protoc --include_imports --descriptor_set_out, buf build -o) for gRPC messages by name (repeatable).",
            valueName: "file"))
    var protoDescriptors: [String] = []

    @Argument(
        parsing: .postTerminator,
        help: ArgumentHelp("The command to run with its traffic recorded.", valueName: "command"))
    var command: [String] = []

    /// The options' own shape, checked before anything starts: ArgumentParser reports these.
    func validate() throws {
        do {
            _ = try upstreamSpecs()
            _ = try listenAddresses()
            _ = try proxyConfiguration()
            _ = try interceptPatterns()
        } catch let error as UsageError {
            throw ValidationError(error.description)
        }
        if command.isEmpty && !rewriteEnv.isEmpty { throw ValidationError("--rewrite-env needs a command after --") }
        if command.isEmpty && envFile != nil { throw ValidationError("--env-file needs a command after --") }
        if command.isEmpty && envJSON != nil { throw ValidationError("--env-json needs a command after --") }
        if envSyntax != nil && envFile == nil {
            throw ValidationError("--env-syntax describes an --env-file; give one")
        }
    }

    func upstreamSpecs() throws -> [UpstreamSpec] {
        try upstream.map { text in
            do { return try UpstreamSpec.parse(text) } catch { throw UsageError("--upstream '\(text)': \(error)") }
        }
    }

    func listenAddresses() throws -> [ListenAddress] {
        try listen.map { text in
            guard let address = ListenAddress.parse(text) else {
                throw UsageError("--listen '\(text)': expected HOST:PORT, e.g. 127.0.0.1:9001")
            }
            return address
        }
    }

    func run() async throws {
        let upstreams = try upstreamSpecs()
        let addresses = try listenAddresses()
        let redaction = try redactionPolicy()
        var proxyConfiguration = try proxyConfiguration()
        let patterns = try interceptPatterns()
        var authority: CertificateAuthority?
        if !patterns.isEmpty {
            let loaded = try loadAuthority()
            authority = loaded
            proxyConfiguration.interception = TLSInterception(hosts: patterns, issuer: LeafIssuer(authority: loaded))
        }
        let fileVariables =
            try (envFile.map { try Self.readEnvFile($0, syntax: envSyntax, flag: "--env-file") } ?? [])
            + (envJSON.map { try Self.readEnvFile($0, syntax: .json, flag: "--env-json") } ?? [])

        // Upstreams without @HOST:PORT take --listen addresses in order; the rest get a free port.
        var freeAddresses = addresses[...]
        var reverse: [(ListenAddress, UpstreamSpec)] = []
        for spec in upstreams {
            if let own = spec.listen {
                reverse.append((own, spec))
            } else if let next = freeAddresses.popFirst() {
                reverse.append((next, spec))
            } else {
                reverse.append((ListenAddress(host: "127.0.0.1", port: 0), spec))
            }
        }
        if command.isEmpty && !upstreams.isEmpty && !freeAddresses.isEmpty {
            throw UsageError(
                "--listen \(freeAddresses.first!): no --upstream left for this listener (use NAME=URL@HOST:PORT)")
        }
        if let program = command.first,
            ChildProcess.locate(program, path: ProcessInfo.processInfo.environment["PATH"]) == nil
        {
            throw UsageError("cannot start '\(program)': no such executable")
        }

        let descriptorSets = try protoDescriptors.map(Self.readDescriptorSet)
        let mode = !command.isEmpty ? "wrapped" : upstreams.isEmpty ? "forward" : "reverse"
        let session = try RecordingSession(
            store: storeOptions.location, outbox: outbox, mode: mode,
            command: command.isEmpty ? nil : command.joined(separator: " "),
            redaction: redaction, configuration: proxyConfiguration)
        for set in descriptorSets { try session.store.addDescriptorSet(set) }
        if descriptorSets.isEmpty {
            reflect(upstreams.filter(\.url.isH2C), into: session.store, configuration: proxyConfiguration)
        }
        var exitCode: Int32 = 0
        do {
            var reverseListeners: [UpstreamSpec: ListenAddress] = [:]
            for (address, spec) in reverse {
                reverseListeners[spec] = try await session.listen(
                    address, route: .reverse(service: spec.name, upstream: spec.url))
            }
            if command.isEmpty {
                if upstreams.isEmpty {
                    let forward = addresses.isEmpty ? [ListenAddress(host: "127.0.0.1", port: 8080)] : addresses
                    for address in forward { try await session.listen(address, route: .forward) }
                }
                _ = await Signals.waitForTermination()
            } else {
                let forwardAddress = freeAddresses.first ?? ListenAddress(host: "127.0.0.1", port: 0)
                let forward = try await session.listen(forwardAddress, route: .forward)
                var environment = try await childEnvironment(
                    session: session, fileVariables: fileVariables, upstreams: upstreams,
                    reverseListeners: reverseListeners, forward: forward)
                if let authority { try trust(authority, in: &environment) }
                exitCode = try await runChild(environment: environment)
            }
        } catch {
            _ = await session.stop()
            throw error
        }
        let (statistics, report) = await session.stop { store, grpcServices in
            // An https:// upstream may be anything: asked for reflection only once it answered gRPC.
            guard descriptorSets.isEmpty else { return }
            let secure = upstreams.filter { $0.url.isTLS && grpcServices.contains($0.name) }
            reflect(secure, into: store, configuration: proxyConfiguration)
        }
        session.summarize(statistics, report)
        if exitCode != 0 { throw ExitReason.command(exitCode) }
    }

    // MARK: Options

    /// Without --proto-descriptors, each h2c upstream is asked for its descriptors by server
    /// reflection when recording starts, and each `https://` one that gRPC calls were recorded
    /// for when it ends (reached with the recorder's trust roots and --resolve); one that does
    /// not answer is recorded all the same, its messages by number.
    func reflect(_ upstreams: [UpstreamSpec], into store: SQLiteStore, configuration: ProxyConfiguration) {
        let reach = CurlClient.Reach(
            trustRoots: configuration.upstreamTrustRoots, insecure: configuration.insecureUpstream,
            resolve: configuration.resolve)
        for spec in upstreams {
            guard let set = ServerReflection.descriptorSet(url: spec.url.description, reach: reach),
                let schema = try? DescriptorSets.schema(set), (try? store.addDescriptorSet(set)) != nil
            else { continue }
            let services = Set(schema.methods.keys.compactMap { $0.split(separator: "/").first }).sorted()
            Terminal.say(
                "\(spec.name): message names from the server's reflection (\(services.joined(separator: ", ")))")
        }
    }

    /// A descriptor set's bytes, once they are known to describe at least one service.
    static func readDescriptorSet(_ path: String) throws -> Data {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw UsageError("--proto-descriptors \(path): cannot read the file")
        }
        do {
            _ = try DescriptorSets.schema(bytes)
        } catch {
            throw UsageError("--proto-descriptors \(path): \(error)")
        }
        return bytes
    }

    func redactionPolicy() throws -> RedactionPolicy {
        try configOptions.redaction(headers: redactHeader, fields: redactField)
    }

    func proxyConfiguration() throws -> ProxyConfiguration {
        var configuration = ProxyConfiguration()
        guard let bytes = ByteSize.parse(maxBody) else {
            throw UsageError("--max-body '\(maxBody)': expected a size like 1048576, 512k or 1MiB")
        }
        configuration.maxBody = bytes
        for (flag, value) in [
            ("--upstream-timeout", upstreamTimeout), ("--connect-timeout", connectTimeout),
            ("--idle-timeout", idleTimeout),
        ]
        where !(value > 0 && value < 86_400) {
            throw UsageError("\(flag) \(value): expected seconds between 0 and 86400")
        }
        configuration.upstreamTimeout = .nanoseconds(Int64(upstreamTimeout * 1e9))
        configuration.connectTimeout = .nanoseconds(Int64(connectTimeout * 1e9))
        configuration.idleTimeout = .nanoseconds(Int64(idleTimeout * 1e9))
        configuration.insecureUpstream = insecureUpstream
        for file in upstreamCA where !FileManager.default.isReadableFile(atPath: file) {
            throw UsageError("--upstream-ca \(file): cannot read the file")
        }
        configuration.upstreamTrustRoots = upstreamCA
        if !upstreamCA.isEmpty {
            do {
                try RecordingProxy.checkTLS(configuration)
            } catch {
                throw UsageError("--upstream-ca \(upstreamCA.joined(separator: ", ")): not PEM certificates (\(error))")
            }
        }
        for entry in resolve {
            let parts = entry.split(separator: "=", maxSplits: 1).map {
                String($0).trimmingCharacters(in: .whitespaces)
            }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
                !parts[0].contains(":") || parts[0].hasPrefix("[")
            else {
                throw UsageError("--resolve '\(entry)': expected HOST=ADDR, e.g. inventory=127.0.0.1")
            }
            configuration.resolve[HostName.bare(parts[0]).lowercased()] = HostName.bare(parts[1])
        }
        return configuration
    }

    func interceptPatterns() throws -> [HostPattern] {
        try interceptTLS.map { text in
            guard let pattern = HostPattern(text) else {
                throw UsageError(
                    "--intercept-tls '\(text)': expected a host name or a glob such as *.example.com, without a port")
            }
            return pattern
        }
    }

    /// The CA behind --intercept-tls, made on first use (and said so).
    func loadAuthority() throws -> CertificateAuthority {
        let directory = caOptions.directory
        do {
            let (authority, created) = try directory.loadOrCreate(now: Date())
            if created {
                Terminal.say(
                    "made a local CA in \(directory.path) for --intercept-tls; 'driftcheck ca print' shows how to trust it"
                )
            }
            return authority
        } catch {
            throw UsageError("--ca-dir \(error.description)")
        }
    }

    static func readEnvFile(_ path: String, syntax: EnvSyntax?, flag: String) throws -> [(String, String)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("\(flag) \(path): cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw UsageError("\(flag) \(path): not UTF-8 text")
        }
        do {
            return try EnvFile.parse(text, syntax: syntax)
        } catch {
            throw UsageError("\(flag) \(path): \(error)")
        }
    }

    // MARK: Wrapped command

    static let proxyVariables: Set<String> = ["http_proxy", "https_proxy", "all_proxy", "no_proxy"]

    /// The child's environment: URL variables pointed at per-dependency listeners, and
    /// HTTP_PROXY at the forward listener for everything else.
    func childEnvironment(
        session: RecordingSession, fileVariables: [(String, String)], upstreams: [UpstreamSpec],
        reverseListeners: [UpstreamSpec: ListenAddress], forward: ListenAddress
    ) async throws -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in fileVariables { environment[key] = value }
        let candidates = environment.sorted { $0.key < $1.key }
            .filter { !Self.proxyVariables.contains($0.key.lowercased()) }
            .map { ($0.key, $0.value) }
        let plan = EnvRewritePlan.plan(environment: candidates, upstreams: upstreams, forced: Set(rewriteEnv))
        for target in plan.targets {
            let existing = reverseListeners.first { spec, _ in
                spec.url.scheme == target.upstream.scheme && spec.url.host == target.upstream.host
                    && spec.url.port == target.upstream.port
            }?.value
            let listener: ListenAddress
            if let existing {
                listener = existing
            } else {
                listener = try await session.listen(
                    ListenAddress(host: "127.0.0.1", port: 0),
                    route: .reverse(service: target.service, upstream: target.upstream))
            }
            for variable in target.variables {
                environment[variable] = EnvRewritePlan.rewrite(environment[variable] ?? "", to: listener)
            }
        }
        var rewritten = Set(plan.targets.flatMap(\.variables))
        // Kubernetes service variables: one listener per service port, every form rewritten to it.
        let services = ServiceVariables.find(in: candidates, forced: Set(rewriteEnv))
        var listeners: [String: ListenAddress] = [:]
        for port in services.ports {
            let upstream = UpstreamURL(scheme: "http", host: port.host, port: port.port, basePath: "")
            let listener = try await session.listen(
                ListenAddress(host: "127.0.0.1", port: 0), route: .reverse(service: port.service, upstream: upstream))
            listeners["\(port.host):\(port.port)"] = listener
            for (name, value) in services.rewrites(for: port, listener: listener, in: environment) {
                environment[name] = value
                rewritten.insert(name)
            }
        }
        // `host:port` values naming a cluster service (or named with --rewrite-env).
        let serviceNames = Set(services.ports.map(\.service))
        for (name, value) in candidates where !rewritten.contains(name) {
            guard
                let (host, port) = HostPortValue.parse(value, services: serviceNames, forced: rewriteEnv.contains(name))
            else { continue }
            let key = "\(host):\(port)"
            let listener: ListenAddress
            if let existing = listeners[key] {
                listener = existing
            } else {
                listener = try await session.listen(
                    ListenAddress(host: "127.0.0.1", port: 0),
                    route: .reverse(
                        service: ServiceName.forVariable(name),
                        upstream: UpstreamURL(scheme: "http", host: host, port: port, basePath: "")))
                listeners[key] = listener
            }
            environment[name] = "\(HostName.bracketed(listener.host)):\(listener.port)"
            rewritten.insert(name)
        }
        for name in rewriteEnv where !rewritten.contains(name) {
            Terminal.warning("--rewrite-env \(name): the variable is not an http(s) URL or host:port; left as it is")
        }
        // Everything else goes through the forward listener; HTTPS as CONNECT tunnels.
        let proxyURL = "http://\(forward)"
        for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"] { environment[name] = proxyURL }
        let noProxy = [environment["NO_PROXY"] ?? environment["no_proxy"], "127.0.0.1,localhost,::1"]
            .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ",")
        environment["NO_PROXY"] = noProxy
        environment["no_proxy"] = noProxy
        return environment
    }

    /// Points the child's TLS libraries at a bundle of the roots it trusts already and the
    /// driftcheck CA: OpenSSL and Python (`SSL_CERT_FILE`), requests, curl, Node.
    func trust(_ authority: CertificateAuthority, in environment: inout [String: String]) throws {
        let own = environment["SSL_CERT_FILE"].flatMap { FileManager.default.isReadableFile(atPath: $0) ? $0 : nil }
        let bundle: String
        do {
            bundle = try caOptions.directory.writeBundle(authority, base: own)
        } catch {
            throw UsageError("--ca-dir \(error.description)")
        }
        for name in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] { environment[name] = bundle }
        // Node adds these to its own roots rather than replacing them: the CA alone is enough.
        environment["NODE_EXTRA_CA_CERTS"] = caOptions.directory.certificatePath
    }

    /// Runs the command with signals passed on to its process group; returns its exit status.
    func runChild(environment: [String: String]) async throws -> Int32 {
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(command, environment: environment)
        } catch {
            throw UsageError("\(error)")
        }
        let sources = Signals.observe { child.signalGroup($0) }
        let status = await child.wait()
        for source in sources { source.cancel() }
        return status
    }
}

/// Sizes written as bytes or with a k/M/G (or KiB/MiB/GiB) suffix, all powers of 1024.
enum ByteSize {
    static func parse(_ text: String) -> Int? {
        let lower = text.lowercased().trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [
            ("gib", 1 << 30), ("mib", 1 << 20), ("kib", 1 << 10), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10),
            ("b", 1),
        ]
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            guard let value = Int(lower.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value > 0 else {
                return nil
            }
            return value * factor
        }
        guard let value = Int(lower), value > 0 else { return nil }
        return value
    }
}

extension EnvSyntax: ExpressibleByArgument {}
