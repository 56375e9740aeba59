import ArgumentParser
import DriftcheckCore
import DriftcheckPostgres
import DriftcheckStore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What `push` and `pull` share: which exchanges, and how the copy reports itself.
struct TransferOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Only this service (repeatable).", valueName: "name"))
    var service: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Only exchanges recorded since WHEN: a date (2026-11-01), an ISO 8601 time, or an age (90m, 12h, 7d, 2w).",
            valueName: "when"))
    var since: String?

    func filter(now: Date) throws -> TransferFilter {
        var filter = TransferFilter(services: service)
        if let since {
            guard let date = PointInTime.parse(since, now: now) else {
                throw UsageError("--since '\(since)': not a date, an ISO 8601 time or an age like 7d")
            }
            filter.since = date
        }
        return filter
    }

    /// Copies and says what happened: a progress line on a terminal, one summary line always.
    func copy(from source: any RecordingStore, to target: any RecordingStore, verb: String) throws {
        let filter = try filter(now: Date())
        let terminal = isatty(STDERR_FILENO) == 1
        var lastDrawn = Date.distantPast
        let result = try StoreTransfer.copy(from: source, to: target, filter: filter, countFirst: terminal) {
            progress, _ in
            guard terminal, Date().timeIntervalSince(lastDrawn) > 0.1 else { return }
            lastDrawn = Date()
            FileHandle.standardError.write(Data("\r\u{1B}[K\(Self.bar(progress, verb: verb))".utf8))
        }
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        let noun = result.read == 1 ? "exchange" : "exchanges"
        Terminal.say(
            "\(verb) \(result.read) \(noun) from \(source.location) to \(target.location): \(result.added) new, \(result.read - result.added) already there"
        )
    }

    static func bar(_ progress: StoreTransfer.Progress, verb: String) -> String {
        let total = max(progress.total, progress.read, 1)
        let width = 30
        let filled = width * progress.read / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return "\(verb) [\(bar)] \(progress.read)/\(total) (\(progress.added) new)"
    }
}

/// `driftcheck push --to URL`: a store's exchanges into another (the team's PostgreSQL).
struct PushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Upload recordings to a shared store; pushing twice adds nothing.")

    @OptionGroup var storeOptions: StoreOptions

    @Option(
        name: .long,
        help: ArgumentHelp("The store to upload to, usually postgres://USER@HOST:PORT/DB.", valueName: "url")
    )
    var to: String

    @OptionGroup var transfer: TransferOptions

    func run() throws {
        // A bad --since fails before any store is opened.
        _ = try transfer.filter(now: Date())
        let source = try storeOptions.openExisting()
        let target = try Stores.open(to, create: true)
        try transfer.copy(from: source, to: target, verb: "pushed")
        try target.close()
        try source.close()
    }
}

/// `driftcheck pull --from URL`: a shared store's exchanges into this machine's store.
struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download recordings from a shared store; pulling twice adds nothing.")

    @OptionGroup var storeOptions: StoreOptions

    @Option(
        name: .long,
        help: ArgumentHelp("The store to download from, usually postgres://USER@HOST:PORT/DB.", valueName: "url"))
    var from: String

    @OptionGroup var transfer: TransferOptions

    func run() throws {
        // A bad --since fails before any store is opened.
        _ = try transfer.filter(now: Date())
        let source = try Stores.open(from, create: false)
        let target = try storeOptions.open()
        try transfer.copy(from: source, to: target, verb: "pulled")
        try target.close()
        try source.close()
    }
}
