import DriftcheckCore
import DriftcheckMocks
import DriftcheckTestSupport
import Foundation
import Testing

/// Every exchange of every fixture recording (datasette and jupyter-server, applications nobody
/// here wrote), replayed against WireMock mappings exported from those same recordings, shows
/// no drift: the export is faithful and the engine and differ invent nothing.
@Suite struct ExportedMocksTests {
    @Test(arguments: ["datasette.har", "jupyter.har"])
    func aRecordingComparedWithMocksExportedFromItShowsNoDrift(file: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("real/\(file)")))
        var exchanges = try HAR.decode(data)
        for index in exchanges.indices { exchanges[index].id = Int64(index + 1) }
        #expect(exchanges.count >= 100)
        for service in Set(exchanges.map(\.service)) {
            let recorded = exchanges.filter { $0.service == service }
            let catalog = EndpointCatalog.learn(paths: recorded.map(\.request.path))
            let mappings = WireMockExport.mappings(for: recorded, catalog: catalog).map { name, mapping in
                WireMockEngine.MappingFile(path: name, data: Data(mapping.serialized().utf8))
            }
            let engine = try WireMockEngine(
                mappings: mappings, files: { .failure(BodyFileRefused(reason: "no files: \($0)")) }, service: service)
            let replayed = recorded.map { ReplayedExchange(exchange: $0, answer: engine.respond(to: $0.request)) }
            let result = Differ(catalog: catalog).compare(service: service, replayed: replayed)
            #expect(
                result.findings.isEmpty,
                "\(file): \(result.findings.map { "\($0.endpoint) \($0.kind.rawValue) \($0.path)" })")
            #expect(result.compared == recorded.count)
            #expect(engine.unusedStubs.isEmpty)
        }
    }
}
