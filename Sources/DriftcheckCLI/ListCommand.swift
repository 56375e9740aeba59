import ArgumentParser
import DriftcheckCore
import DriftcheckStore
import Foundation

/// `driftcheck list`: what the store holds, per service and templated endpoint.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List recorded services, endpoints and exchange counts.")

    @OptionGroup var storeOptions: StoreOptions

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Only this service.", valueName: "name"))
    var service: String?

    func run() async throws {
        let store = try storeOptions.openExisting()
        var summaries = try store.summaries()
        if let service { summaries = summaries.filter { $0.service == service } }
        print(json ? Self.json(summaries) : Self.table(summaries), terminator: "")
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false).timeSeparator(
                .colon
            ).timeZone(separator: .omitted))
    }

    /// Columns aligned with spaces; one row per endpoint, services grouped.
    static func table(_ summaries: [EndpointSummary]) -> String {
        guard !summaries.isEmpty else { return "no recordings\n" }
        var rows = [["SERVICE", "ENDPOINT", "EXCHANGES", "FAILED", "FIRST SEEN", "LAST SEEN"]]
        for summary in summaries {
            rows.append([
                summary.service, summary.endpoint, String(summary.exchanges), String(summary.failures),
                timestamp(summary.firstSeen), timestamp(summary.lastSeen),
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var out = ""
        for row in rows {
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        let services = Set(summaries.map(\.service)).count
        let total = summaries.reduce(0) { $0 + $1.exchanges }
        out +=
            "\(services) service\(services == 1 ? "" : "s"), \(summaries.count) endpoint\(summaries.count == 1 ? "" : "s"), \(total) exchange\(total == 1 ? "" : "s")\n"
        return out
    }

    /// `{"version":1,"services":[{"name":…,"exchanges":…,"endpoints":[…]}]}`
    static func json(_ summaries: [EndpointSummary]) -> String {
        var services: [JSONValue] = []
        for name in Array(Set(summaries.map(\.service))).sorted() {
            let rows = summaries.filter { $0.service == name }
            let endpoints: [JSONValue] = rows.map { row in
                .object([
                    ("endpoint", .string(row.endpoint)),
                    ("exchanges", .number(String(row.exchanges))),
                    ("failures", .number(String(row.failures))),
                    ("firstSeen", .string(timestamp(row.firstSeen))),
                    ("lastSeen", .string(timestamp(row.lastSeen))),
                ])
            }
            services.append(
                .object([
                    ("name", .string(name)),
                    ("exchanges", .number(String(rows.reduce(0) { $0 + $1.exchanges }))),
                    ("endpoints", .array(endpoints)),
                ]))
        }
        return JSONValue.object([("version", .number("1")), ("services", .array(services))]).serialized() + "\n"
    }
}
