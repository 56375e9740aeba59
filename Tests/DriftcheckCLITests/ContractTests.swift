import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import Testing

@testable import DriftcheckCLI

#if canImport(Glibc)
    import Glibc
#endif

/// Contracts in git: HAR export/import, mock refresh, baselines, CI outputs.
extension PeerProcesses {
    @Suite struct ContractTests {
        /// The demo's recordings: a real workload through the real proxy.
        static func demoStore(_ directory: TemporaryDirectory) async throws -> String {
            let store = directory.file("demo.sqlite")
            let result = try await DriftcheckBinary.run(["demo", "--store", store, "--format", "json"], in: directory)
            try #require(result.status == 0, "\(result.output)")
            return store
        }

        static func findingKeys(_ path: String) throws -> [String] {
            let report = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: path)))
            guard case .array(let findings)? = report["findings"] else { return [] }
            return findings.map {
                "\($0["endpoint"]!.serialized()) \($0["kind"]!.serialized()) \($0["path"]!.serialized()) \($0["exchanges"]!.serialized())"
            }
        }

        @Test func harRoundTripIsDeterministicRedactedAndGivesTheSameFindings() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let store = try await Self.demoStore(directory)
            try FileManager.default.createDirectory(
                atPath: directory.file("contracts"), withIntermediateDirectories: true)
            let har = directory.file("contracts/orders.har")
            #expect(
                try await DriftcheckBinary.run(["export", "--har", har, "--store", store], in: directory).status == 0)
            let again = directory.file("again.har")
            #expect(
                try await DriftcheckBinary.run(["export", "--har", again, "--store", store], in: directory).status == 0)
            #expect(try Data(contentsOf: URL(fileURLWithPath: har)) == Data(contentsOf: URL(fileURLWithPath: again)))
            let text = try String(contentsOfFile: har, encoding: .utf8)
            #expect(text.contains("\"version\": \"1.2\""))
            #expect(!text.contains("demo-secret-token"))
            #expect(normalizedMarkers(text)?.contains("Bearer <redacted>") == true)
            #expect(text.contains("\"_endpoint\": \"GET /orders/{id}\""))

            let imported = directory.file("imported.sqlite")
            #expect(try await DriftcheckBinary.run(["import", har, "--store", imported], in: directory).status == 0)
            #expect(try SQLiteStore(path: imported).count() == 21)

            let mocks = Fixtures.path("demo/mocks")
            var reports: [[String]] = []
            for source in [
                ["--store", store], ["--store", imported], ["--har", har],
                ["--contracts", directory.file("contracts")],
            ] {
                let output = directory.file("report-\(reports.count).json")
                let result = try await DriftcheckBinary.run(
                    ["compare", mocks] + source + ["--format", "json", "--output", output], in: directory)
                #expect(result.status == 0, "\(result.output)")
                reports.append(try Self.findingKeys(output))
            }
            #expect(reports[0].count == 12)
            #expect(reports[1] == reports[0])
            #expect(reports[2] == reports[0])
            #expect(reports[3] == reports[0])
        }

        @Test func exportedMocksPassTheGateAndRefreshInPlace() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let store = try await Self.demoStore(directory)
            let mocks = directory.file("mocks")
            #expect(
                try await DriftcheckBinary.run(["export", "--wiremock", mocks, "--store", store], in: directory).status
                    == 0
            )
            let first = try FileManager.default.contentsOfDirectory(atPath: mocks + "/orders/mappings").sorted()
            // One mapping per distinct recorded request, as WireMock's recorder writes them.
            let orderOne = try #require(first.first { $0.hasPrefix("get-orders-1-") })
            let gate = try await DriftcheckBinary.run(["gate", mocks, "--store", store], in: directory)
            #expect(gate.status == 0, "\(gate.output)")
            // Mocks made from the recordings show no drift against them: not even info.
            #expect(gate.output.contains("0 breaking, 0 warnings, 0 info"), "\(gate.output)")
            let mapping = try String(contentsOfFile: mocks + "/orders/mappings/\(orderOne)", encoding: .utf8)
            #expect(mapping.contains("\"jsonBody\""))
            #expect(mapping.contains("\"url\": \"/orders/1\""))
            #expect(mapping.contains("\"name\": \"GET /orders/{id}"))
            // A request answered differently over time (a list that grew) replays as a scenario.
            let texts = try first.map { try String(contentsOfFile: mocks + "/orders/mappings/\($0)", encoding: .utf8) }
            #expect(texts.contains { $0.contains("\"scenarioName\"") && $0.contains("\"newScenarioState\"") })
            for file in first {
                let text = try String(contentsOfFile: mocks + "/orders/mappings/\(file)", encoding: .utf8)
                #expect(!text.contains("demo-secret-token"))
            }
            // A second refresh rewrites the same files; nothing is duplicated.
            #expect(
                try await DriftcheckBinary.run(["export", "--wiremock", mocks, "--store", store], in: directory).status
                    == 0
            )
            #expect(try FileManager.default.contentsOfDirectory(atPath: mocks + "/orders/mappings").sorted() == first)
        }

        @Test func aBaselineAcceptsTodaysDriftUntilItExpires() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let store = try await Self.demoStore(directory)
            let mocks = Fixtures.path("demo/mocks")
            let policy = try directory.write(
                "driftcheck.yml", "# team policy\nrules:\n  - { kind: value, severity: off }\n")
            let failing = try await DriftcheckBinary.run(
                ["gate", mocks, "--store", store, "--config", policy], in: directory)
            #expect(failing.status == 1)

            let update = try await DriftcheckBinary.run(
                ["gate", mocks, "--store", store, "--config", policy, "--update-baseline"], in: directory)
            #expect(update.status == 0, "\(update.output)")
            let text = try String(contentsOfFile: policy, encoding: .utf8)
            #expect(text.hasPrefix("# team policy\nrules:"))
            #expect(text.contains("reason: \"TODO: say why this drift is acceptable\""))

            let passing = try await DriftcheckBinary.run(
                ["gate", mocks, "--store", store, "--config", policy], in: directory)
            #expect(passing.status == 0, "\(passing.output)")
            #expect(passing.output.contains("ACCEPTED"))

            try text.replacingOccurrences(of: "reason: \"TODO", with: "expires: 2020-01-01\n    reason: \"TODO")
                .write(toFile: policy, atomically: true, encoding: .utf8)
            let expired = try await DriftcheckBinary.run(
                ["gate", mocks, "--store", store, "--config", policy], in: directory)
            #expect(expired.status == 1, "\(expired.output)")
        }

        @Test func underGitHubActionsTheGateAnnotatesAndWritesTheStepSummary() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let store = try await Self.demoStore(directory)
            let summary = try directory.write("summary.md", "# earlier step\n")
            let result = try await DriftcheckBinary.run(
                [
                    "gate", Fixtures.path("demo/mocks"), "--store", store, "--format", "junit", "--output",
                    directory.file("junit.xml"),
                ],
                in: directory, environment: ["GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary])
            #expect(result.status == 1)
            let lines = result.output.split(separator: "\n").map(String.init)
            let annotations = lines.filter { $0.hasPrefix("::") }
            #expect(annotations.count == 12)
            let pattern = #"^::(error|warning|notice) title=driftcheck [a-z-]+%3A orders [A-Z]+ [^:]+::.+$"#
            for line in annotations {
                #expect(line.range(of: pattern, options: .regularExpression) != nil, "\(line)")
            }
            #expect(
                annotations.contains {
                    $0.hasPrefix(
                        "::error title=driftcheck phantom-field%3A orders GET /orders/{id}::$.estimatedDelivery")
                })
            let written = try String(contentsOfFile: summary, encoding: .utf8)
            #expect(written.hasPrefix("# earlier step\n## driftcheck"))
            #expect(written.contains("| breaking | orders | `GET /orders/{id}` | phantom-field |"))
            #expect(FileManager.default.fileExists(atPath: directory.file("junit.xml")))
        }

        @Test func annotationValuesAreEscapedTheWayGitHubReadsThem() {
            let finding = Finding(
                service: "a,b", endpoint: "GET /x", kind: .header, path: "header:location",
                message: "50% off\nnext line")
            let report = Report(exchanges: 1, compared: 1, services: 1, findings: [finding])
            #expect(
                GitHubAnnotations.lines(report, failOn: .breaking)
                    == ["::warning title=driftcheck header%3A a%2Cb GET /x::header:location: 50%25 off%0Anext line"])
        }

        @Test func aHARFileThatIsNotOneIsExitTwoNamingIt() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let bad = try directory.write("bad.har", #"{"log": {"version": "1.2"}}"#)
            let truncated = try directory.write("cut.har", #"{"log": {"entries": [{"request": "#)
            for file in [bad, truncated] {
                let result = try await DriftcheckBinary.run(
                    ["import", file, "--store", directory.file("s.sqlite")], in: directory)
                #expect(result.status == 2)
                #expect(result.output.hasPrefix("driftcheck: error: \(file): "), "\(result.output)")
            }
            let stored =
                FileManager.default.fileExists(atPath: directory.file("s.sqlite"))
                ? try SQLiteStore(path: directory.file("s.sqlite")).count() : 0
            #expect(stored == 0)
        }

        /// A HAR that real mitmproxy (PyPI) wrote while proxying real httpbin imports, redacted.
        @Test func aHARWrittenByMitmproxyImports() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let (httpbin, port) = try await CompareEndToEndTests.startHTTPBin(directory)
            defer { httpbin.signalGroup(SIGKILL) }
            let proxyPort = try freeLoopbackPort()
            let har = directory.file("mitm.har")
            let mitmdump = try ChildProcess.spawn(
                [
                    "mitmdump", "--mode", "reverse:http://127.0.0.1:\(port)", "--listen-host", "127.0.0.1", "-p",
                    String(proxyPort),
                    "--set", "hardump=\(har)", "-q",
                ], environment: ProcessInfo.processInfo.environment, outputPath: directory.file("mitmdump.log"))
            // A failed expectation below must not leave it running.
            defer { mitmdump.signalGroup(SIGKILL) }
            let ready = await eventually(timeout: 60) { await httpbinAnswers(port: proxyPort) }
            try #require(
                ready,
                "mitmdump did not start: \((try? String(contentsOfFile: directory.file("mitmdump.log"), encoding: .utf8)) ?? "")"
            )
            // gunicorn answers Connection: close, so each request gets its own connection.
            var statuses: [Int] = []
            for request in [
                ClientRequest("GET", "/json", headers: [("Authorization", "Bearer mitm-secret-token-1")]),
                .json("POST", "/post", #"{"password":"mitm-secret-password-2","qty":2}"#),
                ClientRequest("GET", "/status/418"),
            ] {
                // mitmproxy is the peer here, not the subject: a connection it drops under load
                // is tried once more (an extra exchange in its HAR changes nothing below).
                let response: ClientResponse
                do {
                    response = try await LoopbackHTTPClient.send(request, port: proxyPort, group: testGroup)
                } catch {
                    response = try await LoopbackHTTPClient.send(request, port: proxyPort, group: testGroup)
                }
                statuses.append(response.status)
            }
            #expect(statuses == [200, 200, 418])
            mitmdump.signalGroup(SIGINT)
            _ = await mitmdump.wait()
            let creator = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: har)))["log"]?["creator"]?["name"]
            #expect(creator == .string("mitmproxy"))

            let store = directory.file("imported.sqlite")
            let result = try await DriftcheckBinary.run(
                ["import", har, "--service", "httpbin", "--store", store], in: directory)
            #expect(result.status == 0, "\(result.output)")
            let exchanges = try SQLiteStore(path: store).exchanges()
            // The readiness probe went through mitmproxy too.
            #expect(exchanges.count >= 4)
            #expect(Set(exchanges.map(\.service)) == ["httpbin"])
            #expect(
                Set(exchanges.map { EndpointCatalog.heuristic.endpoint(of: $0.request) }).isSuperset(
                    of: ["GET /json", "POST /post", "GET /status/{id}"]))
            #expect(
                normalizedMarkers(exchanges.first { $0.request.path == "/json" }?.request.headers["authorization"])
                    == "Bearer <redacted>")
            let bytes = String(decoding: try Data(contentsOf: URL(fileURLWithPath: store)), as: UTF8.self)
            #expect(!bytes.contains("mitm-secret-token-1"))
            #expect(!bytes.contains("mitm-secret-password-2"))

            let compared = try await DriftcheckBinary.run(
                ["compare", Fixtures.path("httpbin/wiremock"), "--store", store, "--service", "httpbin"], in: directory)
            #expect(compared.status == 0)
            #expect(compared.output.contains("phantom-field $.slideshow.theme"))
        }
    }
}
