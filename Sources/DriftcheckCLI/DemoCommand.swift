import ArgumentParser
import DriftcheckCompare
import DriftcheckCore
import DriftcheckDemo
import DriftcheckMocks
import DriftcheckProxy
import DriftcheckReports
import DriftcheckStore
import Foundation
import NIOCore
import NIOPosix

/// `driftcheck demo`: the loop on built-in parts, no cluster and no setup.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The whole loop on built-in fixtures: record a workload, then compare it against drifted mocks.")

    @Option(name: .long, help: "Where to keep the demo's recordings (default: a new temporary directory).")
    var store: String?

    @Option(name: .long, help: "The demo's mocks (default: fixtures/demo/mocks of this checkout).")
    var mocks: String?

    @Option(name: .long, help: ArgumentHelp("Report format for the comparison.", valueName: "format"))
    var format: ReportFormat = .text

    /// `fixtures/demo/mocks` from the working directory, or from the checkout the binary was built in.
    func demoMocks() throws -> String {
        if let mocks { return mocks }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            "fixtures/demo/mocks",
            executable.deletingLastPathComponent().appendingPathComponent("../../../fixtures/demo/mocks").standardized
                .path,
            executable.deletingLastPathComponent().appendingPathComponent("../../fixtures/demo/mocks").standardized
                .path,
        ]
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw UsageError("demo: cannot find fixtures/demo/mocks; run from the driftcheck checkout or pass --mocks")
        }
        return found
    }

    func run() async throws {
        let mocksPath = try demoMocks()
        let storePath =
            store ?? (NSTemporaryDirectory() + "driftcheck-demo-\(UUID().uuidString.prefix(8))/recordings.sqlite")
        let group = MultiThreadedEventLoopGroup.singleton
        let dependency = try await LoopbackHTTPServer.start(group: group, route: DemoService.route)
        Terminal.say("demo dependency 'orders' on \(dependency.baseURL)")
        guard let upstream = UpstreamURL.parse(dependency.baseURL) else { throw UsageError("demo: bad upstream URL") }

        let session = try RecordingSession(
            store: storePath, mode: "demo", command: nil, redaction: RedactionPolicy(),
            configuration: ProxyConfiguration())
        let listener = try await session.listen(
            ListenAddress(host: "127.0.0.1", port: 0), route: .reverse(service: "orders", upstream: upstream))

        var requests: [ClientRequest] = []
        for round in 0..<3 {
            requests.append(ClientRequest("GET", "/orders", headers: [("Accept", "application/json")]))
            for id in [round * 3 + 1, round * 3 + 2, 42] { requests.append(ClientRequest("GET", "/orders/\(id)")) }
            requests.append(ClientRequest("GET", "/customers/\(round + 7)"))
            requests.append(
                .json(
                    "POST", "/orders",
                    #"{"customer":7,"items":[{"sku":"SKU-1","quantity":2}],"card":{"cardNumber":"4111111111111111","cvv":"123"}}"#,
                    headers: [("Authorization", "Bearer demo-secret-token")]))
        }
        requests.append(ClientRequest("GET", "/orders/unknown-order"))
        requests.append(.json("POST", "/orders", #"{"customer":7,"items":[]}"#))
        requests.append(ClientRequest("GET", "/health"))
        let responses = try await LoopbackHTTPClient.send(requests, port: listener.port, group: group)
        Terminal.say("sent \(responses.count) requests through the recorder")
        let (statistics, report) = await session.stop()
        await dependency.stop()
        session.summarize(statistics, report)

        let store = try Stores.open(storePath, create: true)
        let summaries = try store.summaries()
        print(ListCommand.table(summaries), terminator: "")
        print("\n$ driftcheck compare \(mocksPath) --store \(storePath)\n")
        // The same library call `compare` makes; the demo's mocks live in a temporary directory.
        let comparison: Report
        do {
            comparison = try await ComparisonPipeline.run(
                ComparisonInput(store: store, mocks: try MockDirectory.load(mocksPath), now: Date()))
        } catch let failure as ComparisonFailure {
            throw UsageError("demo: \(failure.description)")
        }
        let color = format == .text && isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        print(ReportWriter.write(comparison, format: format, failOn: .never, color: color), terminator: "")
    }
}
