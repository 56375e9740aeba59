import ArgumentParser
import DriftcheckCompare
import DriftcheckCore
import DriftcheckMocks
import DriftcheckReplay
import DriftcheckReports
import DriftcheckStore
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Options shared by `compare` and `gate`.
struct ComparisonOptions: ParsableArguments {
    @Argument(
        help: ArgumentHelp(
            "Mocks directory: one sub-directory per service (mappings/ or mock.yml).", valueName: "mocks"))
    var mocks: String?

    @OptionGroup var storeOptions: StoreOptions

    @Option(name: .long, help: ArgumentHelp("Policy file (default: driftcheck.yml if present).", valueName: "path"))
    var config: String?

    @Option(
        name: .long, help: ArgumentHelp("A running mock NAME=URL for a service (repeatable).", valueName: "name=url"))
    var mock: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Recordings from a HAR file instead of the store (repeatable).", valueName: "file"))
    var har: [String] = []

    @Option(name: .long, help: ArgumentHelp("Recordings from every *.har in this directory.", valueName: "dir"))
    var contracts: String?

    @Flag(
        name: .customLong("update-baseline"),
        help: "Accept every current finding in the policy file, for a human to give reasons.")
    var updateBaseline = false

    @Option(name: .long, help: ArgumentHelp("Only this service (repeatable).", valueName: "name"))
    var service: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Report format: text, json, junit, markdown, html (repeatable).", valueName: "format"))
    var format: [ReportFormat] = []

    @Option(
        name: .long,
        help: ArgumentHelp("Where the matching --format goes; - is stdout (repeatable).", valueName: "file"))
    var output: [String] = []

    @Option(name: .customLong("fail-on"), help: ArgumentHelp("breaking, warning, info or never.", valueName: "level"))
    var failOn: FailLevel?

    @Option(
        name: .long,
        help: ArgumentHelp("Requests in flight per service (default 1 keeps recorded order).", valueName: "n"))
    var parallel: Int = 1

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for each mock answer.", valueName: "seconds"))
    var timeout: Double = 30

    @Option(
        name: .customLong("replay-header"),
        help: ArgumentHelp(
            "A header NAME=VALUE sent to mocks instead of the recorded one, e.g. test credentials (repeatable); never stored or reported.",
            valueName: "name=value"))
    var replayHeader: [String] = []

    @Flag(name: .long, help: "Show why candidate differences were treated as noise or accepted.")
    var explain = false

    @Flag(name: .customLong("no-color"), help: "No colours in text output (NO_COLOR is honoured too).")
    var noColor = false

    func validate() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel \(parallel): must be at least 1") }
        guard timeout > 0 && timeout <= 3600 else {
            throw ValidationError("--timeout \(timeout): expected seconds between 0 and 3600")
        }
        if output.count > max(format.count, 1) {
            throw ValidationError(
                "--output \(output[max(format.count, 1)]): no --format for it (pair each --output with a --format)")
        }
    }
}

extension ReportFormat: ExpressibleByArgument {}
extension FailLevel: ExpressibleByArgument {}

/// A whole comparison: recordings in, report out, exit status decided.
struct Comparison {
    var options: ComparisonOptions
    var defaultFailOn: FailLevel

    /// Each `--format` with its `--output` (stdout when none follows).
    func outputs() -> [(ReportFormat, String)] {
        let formats = options.format.isEmpty ? [ReportFormat.text] : options.format
        return formats.enumerated().map { index, format in
            (format, index < options.output.count ? options.output[index] : "-")
        }
    }

    func mockTargets() throws -> [String: MockTarget] {
        var targets: [String: MockTarget] = [:]
        if let directory = options.mocks {
            do { targets = try MockDirectory.load(directory) } catch let error as MockConfigurationError {
                throw UsageError(error.description)
            }
        }
        for spec in options.mock {
            guard let eq = spec.firstIndex(of: "="), UpstreamURL.parse(String(spec[spec.index(after: eq)...])) != nil
            else {
                throw UsageError("--mock '\(spec)': expected NAME=URL, e.g. orders=http://127.0.0.1:3000")
            }
            targets[String(spec[..<eq])] = .running(url: String(spec[spec.index(after: eq)...]))
        }
        if options.mocks == nil && options.mock.isEmpty {
            throw UsageError("name a mocks directory (driftcheck compare ./mocks) or --mock NAME=URL")
        }
        return targets
    }

    /// Runs the comparison; drift at or above the fail-on level and unusable mocks end it with
    /// the reason SPEC gives them.
    func run() async throws {
        let outputs = outputs()
        let failOn = options.failOn ?? defaultFailOn
        let policy = try ConfigFile.load(explicit: options.config)
        let targets = try mockTargets()
        let (store, scratch) = try recordings()
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        var replayHeaders = policy.replayHeaders
        for spec in options.replayHeader {
            guard let eq = spec.firstIndex(of: "="), HTTPToken.isValidName(String(spec[..<eq])),
                HTTPToken.isValidValue(String(spec[spec.index(after: eq)...]))
            else {
                throw UsageError("--replay-header: expected NAME=VALUE, e.g. Authorization=Bearer test-token")
            }
            replayHeaders.remove(String(spec[..<eq]))
            replayHeaders.add(String(spec[..<eq]), String(spec[spec.index(after: eq)...]))
        }
        let input = ComparisonInput(
            store: store, services: options.service, mocks: targets, policy: policy, parallel: options.parallel,
            timeout: options.timeout, replayHeaders: replayHeaders, explain: options.explain, now: Date())
        let progress = Progress()
        let report: Report
        do {
            report = try await ComparisonPipeline.run(input) { done, total in progress.update(done: done, total: total)
            }
        } catch {
            progress.finish()
            switch error {
            case .configuration(let message), .store(let message): throw UsageError(message)
            case .mockDidNotStart, .mockUnreachable:
                Terminal.error(error.description)
                throw ExitReason.mock
            }
        }
        progress.finish()
        for (format, destination) in outputs {
            let color =
                format == .text && destination == "-" && isatty(1) == 1 && !options.noColor
                && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
            let text = ReportWriter.write(report, format: format, failOn: failOn, color: color)
            if destination == "-" {
                print(text, terminator: "")
                fflush(nil)
            } else {
                do {
                    try text.write(toFile: destination, atomically: true, encoding: .utf8)
                } catch {
                    throw UsageError("--output \(destination): cannot write the file")
                }
            }
        }
        if !outputs.contains(where: { $0.0 == .text && $0.1 == "-" }) {
            Terminal.say(String(ReportWriter.summaryLine(report).dropFirst("driftcheck: ".count)))
        }
        try annotate(report, failOn: failOn)
        if options.updateBaseline {
            let added = try Baseline.append(
                report.findings.filter { $0.accepted == nil }, to: options.config ?? ConfigFile.defaultPath)
            Terminal.say(
                "added \(added) accepted drift\(added == 1 ? "" : "s") to \(options.config ?? ConfigFile.defaultPath); give each a reason"
            )
            return
        }
        if report.fails(at: failOn) { throw ExitReason.drift }
    }

    /// The store to read: `--store`, or a scratch store filled from `--har`/`--contracts`.
    func recordings() throws -> (any RecordingStore, String?) {
        var files = options.har
        if let directory = options.contracts {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
                throw UsageError("--contracts \(directory): no such directory")
            }
            files += names.filter { $0.hasSuffix(".har") }.sorted().map {
                (directory as NSString).appendingPathComponent($0)
            }
            if files.isEmpty { throw UsageError("--contracts \(directory): no .har files in it") }
        }
        guard !files.isEmpty else { return (try options.storeOptions.openExisting(), nil) }
        let scratch = NSTemporaryDirectory() + "driftcheck-contracts-\(UUID().uuidString.prefix(8))"
        let store = try SQLiteStore(path: scratch + "/recordings.sqlite")
        let policy = try ConfigFile.load(explicit: options.config).redaction()
        for file in files {
            let contents = try ImportCommand.read(file, service: nil)
            try ImportCommand.addDescriptorSets(of: contents, to: store)
            try store.insert(contents.exchanges.map(ExchangeSanitizer(redaction: policy).sanitize), session: nil)
        }
        return (store, scratch)
    }

    /// GitHub Actions: workflow-command annotations and the Markdown summary for the run page.
    func annotate(_ report: Report, failOn: FailLevel) throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["GITHUB_ACTIONS"] == "true" else { return }
        for line in GitHubAnnotations.lines(report, failOn: failOn) { print(line) }
        if let summary = environment["GITHUB_STEP_SUMMARY"], !summary.isEmpty {
            let text = ReportWriter.markdown(report, failOn: failOn)
            if let handle = FileHandle(forWritingAtPath: summary) {
                handle.seekToEndOfFile()
                handle.write(Data(text.utf8))
                handle.closeFile()
            } else {
                try? text.write(toFile: summary, atomically: true, encoding: .utf8)
            }
        }
    }
}

/// `::error title=…::message` lines GitHub turns into annotations.
enum GitHubAnnotations {
    static func escapeData(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D")
            .replacingOccurrences(of: "\n", with: "%0A")
    }

    static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }

    static func lines(_ report: Report, failOn: FailLevel) -> [String] {
        report.findings.filter { $0.accepted == nil }.map { finding in
            let command = failOn.fails(finding.severity) ? "error" : finding.severity == .info ? "notice" : "warning"
            let title = escapeProperty("driftcheck \(finding.kind.rawValue): \(finding.service) \(finding.endpoint)")
            return "::\(command) title=\(title)::\(escapeData("\(finding.path): \(finding.message)"))"
        }
    }
}

/// A one-line progress bar on stderr when it is a terminal.
final class Progress: Sendable {
    private let lastDraw = Mutex(Date.distantPast)
    private let enabled = isatty(2) == 1

    func update(done: Int, total: Int) {
        guard enabled else { return }
        lastDraw.withLock { lastDraw in
            guard Date().timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
            lastDraw = Date()
            let width = 30
            let filled = total == 0 ? width : width * min(done, total) / total
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\rreplaying \(bar) \(done)/\(total)".utf8))
        }
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// `driftcheck compare MOCKS`.
struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Replay recordings against local mocks and report where they drift.")

    @OptionGroup var options: ComparisonOptions

    func run() async throws {
        try await Comparison(options: options, defaultFailOn: .never).run()
    }
}

/// `driftcheck gate MOCKS`: compare with CI defaults.
struct GateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "compare as a pre-merge check: fails on breaking drift; GitHub annotations and step summary.")

    @OptionGroup var options: ComparisonOptions

    func run() async throws {
        try await Comparison(options: options, defaultFailOn: .breaking).run()
    }
}
