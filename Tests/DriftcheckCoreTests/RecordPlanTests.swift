import DriftcheckCore
import Foundation
import Testing

@Suite struct RecordPlanTests {
    @Test func parsesUpstreamsWithAndWithoutListeners() throws {
        let plain = try UpstreamSpec.parse("orders=http://orders.shop:8080")
        #expect(plain.name == "orders")
        #expect(plain.url == UpstreamURL(scheme: "http", host: "orders.shop", port: 8080))
        #expect(plain.listen == nil)

        let withListener = try UpstreamSpec.parse("pay=https://user@pay.example.com/api/@127.0.0.1:9002")
        #expect(withListener.url.scheme == "https")
        #expect(withListener.url.port == 443)
        #expect(withListener.url.basePath == "/api")
        #expect(withListener.listen == ListenAddress(host: "127.0.0.1", port: 9002))
    }

    @Test(arguments: ["orders", "=http://x", "a/b=http://x", "orders=ftp://x", "orders=not a url"])
    func rejectsBadUpstreams(text: String) {
        #expect(throws: UpstreamSpec.ParseError.self) { try UpstreamSpec.parse(text) }
    }

    @Test func parsesListenAddresses() {
        #expect(ListenAddress.parse("127.0.0.1:9001") == ListenAddress(host: "127.0.0.1", port: 9001))
        #expect(ListenAddress.parse(":0") == ListenAddress(host: "127.0.0.1", port: 0))
        #expect(ListenAddress.parse("[::1]:80") == ListenAddress(host: "::1", port: 80))
        #expect(ListenAddress.parse("0.0.0.0:8080")?.isLoopback == false)
        #expect(ListenAddress.parse("localhost") == nil)
        #expect(ListenAddress.parse("host:99999") == nil)
    }

    @Test func readsTelepresenceEnvFiles() throws {
        let text = """
            # written by telepresence
            ORDERS_URL=http://orders.shop.svc.cluster.local:8080
            export PAYMENTS_URL="https://payments.shop:8443/v1"
            EMPTY=
            QUOTED='a b'
            KUBERNETES_SERVICE_HOST=10.0.0.1\r

            """
        let pairs = try EnvFile.parse(text)
        #expect(pairs.map(\.0) == ["ORDERS_URL", "PAYMENTS_URL", "EMPTY", "QUOTED", "KUBERNETES_SERVICE_HOST"])
        #expect(pairs[1].1 == "https://payments.shop:8443/v1")
        #expect(pairs[3].1 == "a b")
        #expect(pairs[4].1 == "10.0.0.1")
    }

    @Test func rejectsEnvFileLinesWithoutAssignment() {
        #expect(throws: EnvFile.ParseError(line: 2, reason: "expected KEY=VALUE")) {
            try EnvFile.parse("A=1\njust words\n")
        }
    }

    @Test func plansOneListenerPerDependencyOrigin() {
        let environment = [
            ("ORDERS_URL", "http://orders.shop:8080/api"),
            ("ORDERS_ADMIN_URL", "http://orders.shop:8080/admin"),
            ("PAYMENTS_URL", "https://payments.shop"),
            ("LOCAL_DB_URL", "http://127.0.0.1:5432"),
            ("FORCED_URL", "http://localhost:7000"),
            ("HOME", "/root"),
        ]
        let named = try! UpstreamSpec.parse("billing=https://payments.shop")
        let plan = EnvRewritePlan.plan(environment: environment, upstreams: [named], forced: ["FORCED_URL"])
        #expect(plan.targets.map(\.service) == ["orders", "billing", "forced"])
        #expect(plan.targets[0].variables == ["ORDERS_URL", "ORDERS_ADMIN_URL"])
        #expect(plan.targets[0].upstream == UpstreamURL(scheme: "http", host: "orders.shop", port: 8080))
        #expect(plan.targets[2].upstream.host == "localhost")
    }

    @Test func rewritesOnlyTheOrigin() {
        let rewritten = EnvRewritePlan.rewrite(
            "https://orders.shop:8443/api/v1?x=1", to: ListenAddress(host: "127.0.0.1", port: 4000))
        #expect(rewritten == "http://127.0.0.1:4000/api/v1?x=1")
    }
}

@Suite struct TelepresenceFixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/env/telepresence.env")

    @Test func plansListenersForTheClusterDependenciesOnly() throws {
        let text = try String(contentsOf: Self.fixture, encoding: .utf8)
        let plan = EnvRewritePlan.plan(environment: try EnvFile.parse(text), upstreams: [], forced: [])
        #expect(plan.targets.map(\.service) == ["orders", "payments-api", "inventory"])
        #expect(plan.targets[0].variables == ["ORDERS_URL", "ORDERS_ADMIN_URL"])
        #expect(
            plan.targets[1].upstream == UpstreamURL(scheme: "https", host: "payments.shop.svc.cluster.local", port: 443)
        )
    }
}
