// Store writer throughput: N realistic exchanges submitted as fast as possible, then flushed.
// Usage: driftcheck-bench-store [N] [STORE]
import DriftcheckCore
import DriftcheckStore
import Foundation

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 200_000 : 200_000
let path =
    CommandLine.arguments.count > 2
    ? CommandLine.arguments[2] : NSTemporaryDirectory() + "bench-store-\(getpid()).sqlite"
try? FileManager.default.removeItem(atPath: path)
let store = try SQLiteStore(path: path)
// A queue as large as the run: this measures how fast the writer drains, not the drop policy.
let writer = StoreWriter(
    store: store, session: nil, redaction: RedactionPolicy(), capacity: count, byteCapacity: Int.max)
let body = Data(
    #"{"id":42,"status":"paid","total":99.5,"items":[{"sku":"SKU-1","quantity":2}],"createdAt":"2026-11-26T10:00:00Z"}"#
        .utf8)
let headers = HeaderFields([
    ("Content-Type", "application/json"), ("Content-Length", "118"), ("Date", "Thu, 26 Nov 2026 10:00:00 GMT"),
])
let start = Date()
var accepted = 0
for index in 0..<count {
    let exchange = Exchange(
        service: "orders",
        request: RecordedRequest(
            method: "GET", host: "orders.shop", port: 8080, path: "/orders/\(index)",
            headers: HeaderFields([
                ("Accept", "application/json"), ("User-Agent", "bench"), ("Authorization", "Bearer x"),
            ])),
        result: .response(RecordedResponse(status: 200, headers: headers, body: CapturedBody(bytes: body))),
        startedAt: Date(), duration: 0.001)
    if writer.submit(exchange) { accepted += 1 }
}
let submitted = Date().timeIntervalSince(start)
let statistics = writer.finish()
let total = Date().timeIntervalSince(start)
let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
print(
    String(
        format:
            "store writer: %d exchanges in %.2f s = %.0f exchanges/s (%d batches, %.0f per batch, %d dropped); submit %.2f s; WAL %.1f MiB before checkpoint",
        statistics.written, total, Double(statistics.written) / total, statistics.batches,
        Double(statistics.written) / Double(max(statistics.batches, 1)), statistics.dropped, submitted,
        Double(wal) / 1_048_576))
try store.close()
try? FileManager.default.removeItem(atPath: path)
