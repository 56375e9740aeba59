import DriftcheckCore
import Testing

@Suite struct EndpointTests {
    @Test(arguments: [
        ("/orders/42", "/orders/{id}"),
        ("/orders/42/items/7", "/orders/{id}/items/{id2}"),
        ("/users/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/users/{id}"),
        ("/commits/9fceb02d0ae598e95dc970b74767f19372d61af8", "/commits/{id}"),
        ("/objects/5f8d0d55b54764421b7156c3", "/objects/{id}"),
        ("/payments/ord_8f2kLm3nQ9xY7zWp", "/payments/{id}"),
        ("/payments/01HQ3Z9V8K2M4N6P7R9S0T1V2W", "/payments/{id}"),
        ("/carts/user-42", "/carts/{id}"),
        ("/orders", "/orders"),
        ("/api/v2/orders", "/api/v2/orders"),
        ("/static/facade", "/static/facade"),
        ("/healthz", "/healthz"),
        ("/", "/"),
        ("/orders/", "/orders/"),
        ("/orders/search", "/orders/search"),
    ])
    func templatesIdentifierSegments(path: String, expected: String) {
        #expect(Endpoint.templatePath(path) == expected)
    }

    @Test func endpointIncludesUppercasedMethod() {
        #expect(EndpointCatalog.heuristic.endpoint(method: "get", path: "/orders/1") == "GET /orders/{id}")
    }

    @Test(arguments: [
        ("orders.shop.svc.cluster.local", 80, "orders"),
        ("Payments.example.com", 443, "payments"),
        ("127.0.0.1", 8080, "127.0.0.1-8080"),
        ("localhost", 3000, "localhost-3000"),
        ("[::1]", 9000, "__1-9000"),
        ("inventory", 8080, "inventory"),
    ])
    func namesServicesAfterHosts(host: String, port: Int, expected: String) {
        #expect(ServiceName.forHost(host, port: port) == expected)
    }

    @Test(arguments: [
        ("ORDERS_URL", "orders"),
        ("PAYMENT_API_BASE_URL", "payment-api"),
        ("INVENTORY_SERVICE_HOST", "inventory"),
        ("URL", "url"),
        ("CATALOG_ENDPOINT", "catalog"),
    ])
    func namesServicesAfterVariables(variable: String, expected: String) {
        #expect(ServiceName.forVariable(variable) == expected)
    }

    @Test func validServiceNamesCannotEscapeTheMocksDirectory() {
        #expect(ServiceName.isValid("orders-v2"))
        #expect(!ServiceName.isValid(".."))
        #expect(!ServiceName.isValid("a/b"))
        #expect(!ServiceName.isValid(""))
    }
}
