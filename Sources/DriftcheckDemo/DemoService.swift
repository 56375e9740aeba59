import Foundation

/// The built-in "orders" dependency that `driftcheck demo` records: realistic JSON with ids,
/// timestamps, nullable and enum fields, a Location header and an error shape.
public enum DemoService {
    static let statuses = ["pending", "paid", "shipped"]

    public static func route(_ request: ServerRequest) -> ServerResponse {
        let parts = request.path.split(separator: "/").map(String.init)
        let now = ISO8601DateFormatter().string(from: Date())
        switch (request.method, parts.count, parts.first) {
        case ("GET", 1, "orders"):
            let items = (1...3).map { order(id: $0, now: now) }.joined(separator: ",")
            return .json("{\"orders\":[\(items)],\"next\":null}")
        case ("GET", 2, "orders"):
            guard let id = Int(parts[1]), id > 0, id < 1000 else {
                return .json("{\"error\":\"not_found\",\"message\":\"no order \(parts[1])\"}", status: 404)
            }
            return .json(order(id: id, now: now), headers: [("X-Request-Id", UUID().uuidString)])
        case ("POST", 1, "orders"):
            guard request.header("authorization") != nil else {
                return .json(
                    "{\"error\":\"unauthorized\"}", status: 401,
                    headers: [("WWW-Authenticate", "Bearer realm=\"orders\"")])
            }
            let id = Int.random(in: 1000...9999)
            return .json(order(id: id, now: now), status: 201, headers: [("Location", "/orders/\(id)")])
        case ("GET", 2, "customers"):
            guard let id = Int(parts[1]) else { return .json("{\"error\":\"not_found\"}", status: 404) }
            return .json(
                "{\"id\":\(id),\"name\":\"Customer \(id)\",\"email\":\"c\(id)@example.com\",\"vip\":\(id % 2 == 0),\"phone\":null}"
            )
        case ("GET", 1, "health"):
            return .json("{\"status\":\"ok\",\"uptime\":\(Int(ProcessInfo.processInfo.systemUptime))}")
        default:
            return .json("{\"error\":\"not_found\"}", status: 404)
        }
    }

    static func order(id: Int, now: String) -> String {
        let status = statuses[id % statuses.count]
        let discount = id % 3 == 0 ? "null" : "\(Double(id % 5) * 0.5)"
        return """
            {"id":\(id),"uuid":"\(UUID().uuidString.lowercased())","status":"\(status)","customer":{"id":\(id * 7),"href":"/customers/\(id * 7)"},\
            "items":[{"sku":"SKU-\(id)","quantity":\(id % 4 + 1),"price":\(Double(id) + 0.99)}],"total":\(Double(id) * 2.5),\
            "discount":\(discount),"createdAt":"\(now)"}
            """
    }
}
