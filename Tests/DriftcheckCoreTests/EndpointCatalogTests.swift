import DriftcheckCore
import Foundation
import Testing

@Suite struct EndpointCatalogTests {
    /// Shapes by path prefix, as a store would answer them from recorded bodies.
    static func shapes(_ table: [String: String]) -> (String) -> Set<String>? {
        { path in
            guard let key = table.keys.sorted(by: { $0.count > $1.count }).first(where: { path.hasPrefix($0) }),
                let body = try? JSONValue.parse(Data(table[key]!.utf8))
            else { return nil }
            return TemplateLearner.keyPaths(of: body)
        }
    }

    @Test func identifiersWithSuffixesDatesAndVersionsBecomeParameters() {
        let paths =
            (1...8).map { "/shop/orders/\($0).json" } + [
                "/shop/orders.json", "/reports/2024-05-01", "/reports/2024-05-02/summary", "/pypi/requests/2.31.0/json",
                "/api/v1/orders/7", "/commits/9fceb02d0ae598e95dc970b74767f19372d61af8.patch",
            ]
        let catalog = EndpointCatalog.learn(paths: paths)
        #expect(catalog.endpoint(method: "GET", path: "/shop/orders/7.json") == "GET /shop/orders/{id}.json")
        #expect(catalog.endpoint(method: "GET", path: "/shop/orders.json") == "GET /shop/orders.json")
        #expect(catalog.templatePath(method: "GET", path: "/reports/2024-05-01") == "/reports/{id}")
        #expect(catalog.templatePath(method: "GET", path: "/reports/2024-05-02/summary") == "/reports/{id}/summary")
        #expect(catalog.templatePath(method: "GET", path: "/pypi/requests/2.31.0/json") == "/pypi/requests/{id}/json")
        // A bare API version is a route word, not a parameter.
        #expect(catalog.templatePath(method: "GET", path: "/api/v1/orders/7") == "/api/v1/orders/{id}")
        #expect(
            catalog.templatePath(method: "GET", path: "/commits/9fceb02d0ae598e95dc970b74767f19372d61af8.patch")
                == "/commits/{id}.patch")
    }

    @Test func slugsOfOneShapeAreAParameterAndStaticWordsStay() {
        let post = #"{"title":"x","slug":"y","author":{"name":"a"},"tags":["t"]}"#
        let shape = Self.shapes([
            "/posts/": post, "/api/users": #"{"users":[{"email":"a@b.c","name":"n"}]}"#,
            "/api/orders": #"{"orders":[{"total":1.5,"status":"PAID"}]}"#,
            "/api/products": #"{"products":[{"sku":"A","price":2}]}"#,
            "/orders/search": #"{"results":[],"query":"q"}"#, "/orders/": #"{"id":1,"status":"PAID"}"#,
        ])
        let paths = [
            "/posts/hello-world", "/posts/my-first-post", "/posts/another-one", "/posts/why-swift",
            "/api/users", "/api/orders", "/api/products", "/orders/search", "/orders/1", "/orders/2",
        ]
        let catalog = EndpointCatalog.learn(paths: paths, shape: shape)
        for slug in ["hello-world", "my-first-post", "another-one", "why-swift"] {
            #expect(catalog.templatePath(method: "GET", path: "/posts/\(slug)") == "/posts/{id}")
        }
        #expect(catalog.templatePath(method: "GET", path: "/api/users") == "/api/users")
        #expect(catalog.templatePath(method: "GET", path: "/api/orders") == "/api/orders")
        #expect(catalog.templatePath(method: "GET", path: "/orders/search") == "/orders/search")
        #expect(catalog.templatePath(method: "GET", path: "/orders/2") == "/orders/{id}")
        // Two slugs are not enough to call a position a parameter.
        let few = EndpointCatalog.learn(paths: ["/posts/hello-world", "/posts/my-first-post"], shape: shape)
        #expect(few.templatePath(method: "GET", path: "/posts/hello-world") == "/posts/hello-world")
    }

    @Test func nestedSlugsCollapseLevelByLevel() {
        let repo = #"{"name":"p","owner":{"login":"o"},"stars":1}"#
        let shape = Self.shapes(["/repos/": repo])
        let paths = ["/repos/alice/proj-one", "/repos/bob/proj-two", "/repos/carol/proj-three"]
        let catalog = EndpointCatalog.learn(paths: paths, shape: shape)
        #expect(catalog.templatePath(method: "GET", path: "/repos/bob/proj-two") == "/repos/{id}/{id2}")
    }

    @Test func pagesWithoutJSONNeedManyMoreSiblings() {
        let pages = ["/about", "/contact", "/help", "/pricing"]
        let catalog = EndpointCatalog.learn(paths: pages)
        for page in pages { #expect(catalog.templatePath(method: "GET", path: page) == page) }
        let files = (1...9).map { "/files/report-\(["a", "b", "c", "d", "e", "f", "g", "h", "i"][$0 - 1]).pdf" }
        let many = EndpointCatalog.learn(paths: files)
        #expect(many.templatePath(method: "GET", path: "/files/report-c.pdf") == "/files/{id}.pdf")
    }

    @Test func templatesAreStableAsRecordingsGrow() {
        let order = #"{"id":1,"status":"PAID","total":2.5}"#
        let shape = Self.shapes(["/shop/": order])
        let first =
            (1...5).map { "/shop/orders/\($0).json" } + [
                "/shop/customers/ann-lee", "/shop/customers/bo-chan",
                "/shop/customers/cy-dunn",
            ]
        let more = first + (6...40).map { "/shop/orders/\($0).json" } + ["/shop/customers/di-eve", "/shop/orders.json"]
        let small = EndpointCatalog.learn(paths: first, shape: shape)
        let large = EndpointCatalog.learn(paths: more, shape: shape)
        for path in first {
            #expect(small.endpoint(method: "GET", path: path) == large.endpoint(method: "GET", path: path))
        }
        #expect(large.templatePath(method: "GET", path: "/shop/customers/di-eve") == "/shop/customers/{id}")
        // Order of arrival changes nothing.
        let shuffled = EndpointCatalog.learn(paths: more.reversed(), shape: shape)
        for path in more {
            #expect(shuffled.endpoint(method: "GET", path: path) == large.endpoint(method: "GET", path: path))
        }
    }

    @Test func mappingsNameTheEndpointsOfWhatTheyMatch() throws {
        let declared = [
            try #require(DeclaredRoute(method: "DELETE", pattern: "/orders/[0-9]+", onTarget: false)),
            try #require(DeclaredRoute(method: "GET", pattern: #"/shop/orders/\d+\.json"#, onTarget: false)),
            try #require(
                DeclaredRoute(method: "GET", pattern: "/customers/(?<customerId>[^/]+)/cards", onTarget: false)),
            try #require(DeclaredRoute(method: "GET", pattern: #"/search\?q=.*"#, onTarget: true)),
            DeclaredRoute(method: "PUT", template: "/carts/{cartId}/items/{sku}"),
            try #require(DeclaredRoute(method: "ANY", pattern: "/api/.*", onTarget: false)),
        ]
        let catalog = EndpointCatalog.learn(paths: ["/orders/7", "/orders/8", "/orders/search"], declared: declared)
        #expect(catalog.endpoint(method: "DELETE", path: "/orders/7") == "DELETE /orders/{id}")
        #expect(catalog.endpoint(method: "GET", path: "/shop/orders/12.json") == "GET /shop/orders/{id}.json")
        #expect(catalog.endpoint(method: "GET", path: "/customers/ann/cards") == "GET /customers/{customerId}/cards")
        #expect(catalog.endpoint(method: "GET", path: "/search", query: "q=shoes") == "GET /search")
        #expect(catalog.endpoint(method: "PUT", path: "/carts/c1/items/A-1") == "PUT /carts/{cartId}/items/{sku}")
        // The more specific route wins over a catch-all; unmatched requests are learned.
        #expect(catalog.endpoint(method: "GET", path: "/api/orders") == "GET /api/{id}")
        #expect(catalog.endpoint(method: "GET", path: "/orders/8") == "GET /orders/{id}")
        #expect(catalog.endpoint(method: "GET", path: "/orders/search") == "GET /orders/search")
    }

    @Test(arguments: [
        ("/orders/[0-9]+", "/orders/{id}"),
        (#"/orders/\d+/lines/\d+"#, "/orders/{id}/lines/{id2}"),
        ("/users/[a-z0-9-]+/repos", "/users/{id}/repos"),
        ("^/v1/items/([0-9a-f]{8})$", "/v1/items/{id}"),
        ("/(orders)/.*", "/orders/{id}"),
        ("/files/.+", "/files/{id}"),
        (#"/api/v2/search\?q=.*"#, "/api/v2/search?q={id}"),
        ("/a|/b", "/{path}"),
    ])
    func regexesReadAsTemplates(pattern: String, template: String) {
        #expect(RouteTemplate.fromRegex(pattern).template == template)
        #expect(!RouteTemplate.fromRegex(pattern).template.contains("["))
    }

    @Test func slugsKeepTheirSuffixAndAFailedLookupJoinsThem() {
        let product = #"{"slug":"x","name":"n","price":2.5}"#
        let shape: (String) -> Set<String>? = { path in
            if path.contains("no-such") { return TemplateLearner.failuresOnly }
            if path.hasPrefix("/shop/products/") {
                return TemplateLearner.keyPaths(of: try! JSONValue.parse(Data(product.utf8)))
            }
            if path == "/shop/products/search.json" { return nil }
            return nil
        }
        let paths = [
            "/shop/products/blue-widget.json", "/shop/products/red-gadget.json", "/shop/products/green-gizmo.json",
            "/shop/products/no-such-thing.json", "/shop/products/search",
        ]
        let catalog = EndpointCatalog.learn(paths: paths, shape: shape)
        #expect(
            catalog.templatePath(method: "GET", path: "/shop/products/red-gadget.json") == "/shop/products/{id}.json")
        #expect(
            catalog.templatePath(method: "GET", path: "/shop/products/no-such-thing.json") == "/shop/products/{id}.json"
        )
        #expect(catalog.templatePath(method: "GET", path: "/shop/products/search") == "/shop/products/search")
    }

    @Test func manySlugsAreSampledNotEachReadAndRouteWordsAmongThemAreStillRead() {
        let post = #"{"title":"x","slug":"y","body":"z"}"#
        let search = #"{"results":[],"query":"q"}"#
        let reads = Counter()
        let shape: (String) -> Set<String>? = { path in
            reads.value += 1
            let body = path.hasSuffix("/search") ? search : post
            return TemplateLearner.keyPaths(of: try! JSONValue.parse(Data(body.utf8)))
        }
        let paths = (1...2_000).map { "/posts/post-number-\($0)" } + ["/posts/search"]
        let catalog = EndpointCatalog.learn(paths: paths, shape: shape)
        #expect(catalog.templatePath(method: "GET", path: "/posts/post-number-1999") == "/posts/{id}")
        #expect(catalog.templatePath(method: "GET", path: "/posts/search") == "/posts/search")
        #expect(reads.value <= TemplateLearner.shapeSamples + 1)
    }
}

final class Counter: @unchecked Sendable {
    // Test-only, single-threaded.
    var value = 0
}
