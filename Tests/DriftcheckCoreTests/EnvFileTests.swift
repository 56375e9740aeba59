import DriftcheckCore
import Foundation
import Testing

/// Env files as Telepresence 2.20 writes them (`pkg/client/cli/intercept/envsyntax.go`), one per
/// syntax, with the hard values: quotes, `$`, backslashes, `=`, non-ASCII, empty, newlines.
@Suite struct EnvFileTests {
    /// What every file below must read back to (file 2 and 3 of the cases; newlines only where
    /// the syntax can write them).
    static let simple: [(String, String)] = [
        ("BSL", #"C:\dir\n"#), ("DOLLAR", "$HOME ${X} `id`"), ("DQ", #"say "hi""#), ("EMPTY", ""), ("EQ", "a=b==c"),
        ("HASH", "#x"), ("SQ", "it's"), ("SQ2", "''"), ("UTF", "héllo ✓"),
    ]
    static let multiline: [(String, String)] = [
        ("MIX", "it's \"x\"\n$y"), ("PEM", "-----BEGIN-----\nAAA\n-----END-----"), ("TABS", "a\tb"),
    ]

    static func same(_ a: [(String, String)], _ b: [(String, String)]) -> Bool {
        a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
    }

    @Test func docker() throws {
        let text = """
            BSL=C:\\dir\\n
            DOLLAR=$HOME ${X} `id`
            DQ=say "hi"
            EMPTY=
            EQ=a=b==c
            HASH=#x
            SQ=it's
            SQ2=''
            UTF=héllo ✓

            """
        #expect(Self.same(try EnvFile.parse(text, syntax: .docker), Self.simple))
        // The plain form with no quote characters is detected as docker.
        #expect(EnvSyntax.detect("A=1\nB=two words\n") == .docker)
        #expect(Self.same(try EnvFile.parse("set A=1\nset B=x y\n", syntax: .cmd), [("A", "1"), ("B", "x y")]))
    }

    @Test func compose() throws {
        let text = """
            BSL='C:\\dir\\n'
            DOLLAR='$HOME ${X} `id`'
            DQ='say "hi"'
            EMPTY=
            EQ=a=b==c
            HASH='#x'
            SQ='it\\'s'
            SQ2='\\'\\''
            UTF='héllo ✓'
            MIX="it's \\"x\\"\\n$y"
            PEM="-----BEGIN-----\\nAAA\\n-----END-----"
            TABS="a\\tb"
            ENDS='ends\\'

            """
        let expected = Self.simple + Self.multiline + [("ENDS", "ends\\")]
        #expect(Self.same(try EnvFile.parse(text, syntax: .compose), expected))
        #expect(EnvSyntax.detect(text) == .compose)
    }

    @Test(arguments: [
        (EnvSyntax.sh, "", "="), (.shExport, "export ", "="), (.csh, "set ", "="), (.cshExport, "setenv ", " "),
    ])
    func shellSyntaxes(syntax: EnvSyntax, prefix: String, separator: String) throws {
        let entries = [
            ("BSL", #"'C:\dir\n'"#), ("DOLLAR", "'$HOME ${X} `id`'"), ("DQ", #"'say "hi"'"#), ("EMPTY", "''"),
            ("EQ", "a=b==c"), ("HASH", "'#x'"), ("SQ", #"it\'s"#), ("SQ2", #"\'\'"#), ("UTF", "'héllo ✓'"),
            ("MIX", "it\\''s \"x\"\n$y'"), ("PEM", "'-----BEGIN-----\nAAA\n-----END-----'"), ("TABS", "'a\tb'"),
        ]
        let text = entries.map { "\(prefix)\($0.0)\(separator)\($0.1)\n" }.joined()
        #expect(Self.same(try EnvFile.parse(text, syntax: syntax), Self.simple + Self.multiline))
        #expect(EnvSyntax.detect(text) == syntax)
        // The real shell as the oracle: bash sources the sh forms and reports what it got.
        if syntax == .sh || syntax == .shExport {
            #expect(Self.same(try Self.bash(text, names: entries.map(\.0)), Self.simple + Self.multiline))
        }
    }

    /// The variables `names` as bash sees them after sourcing `text`.
    static func bash(_ text: String, names: [String]) throws -> [(String, String)] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString).sh")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        let dump = #"import json, os, sys; json.dump([[n, os.environ[n]] for n in sys.argv[1:]], sys.stdout)"#
        process.arguments = ["-c", "set -a; . \"$0\"; exec python3 -c '\(dump)' \"$@\"", file.path] + names
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard case .array(let pairs) = try JSONValue.parse(data) else { return [] }
        return pairs.compactMap { pair in
            guard case .array(let parts) = pair, parts.count == 2, case .string(let name) = parts[0],
                case .string(let value) = parts[1]
            else { return nil }
            return (name, value)
        }
    }

    @Test func powerShell() throws {
        let text = """
            $Env:SQ='it''s'
            $Env:SQ2=''''''
            $Env:EMPTY=''
            $Env:DOLLAR='$HOME ${X} `id`'
            $Env:PEM='-----BEGIN-----
            AAA
            -----END-----'

            """
        let expected = [
            ("SQ", "it's"), ("SQ2", "''"), ("EMPTY", ""), ("DOLLAR", "$HOME ${X} `id`"),
            ("PEM", "-----BEGIN-----\nAAA\n-----END-----"),
        ]
        #expect(Self.same(try EnvFile.parse(text), expected))
        let exports = """
            [Environment]::SetEnvironmentVariable('SQ2', '''''', 'User')
            [Environment]::SetEnvironmentVariable('PEM', '-----BEGIN-----
            AAA
            -----END-----', 'User')

            """
        #expect(Self.same(try EnvFile.parse(exports), [("SQ2", "''"), ("PEM", "-----BEGIN-----\nAAA\n-----END-----")]))
    }

    @Test func json() throws {
        let text = #"{\#n  "ECHO_PORT": "tcp://10.96.12.7:8080",\#n  "MIX": "it's \"x\"\n$y",\#n  "ROOT": ""\#n}"#
        #expect(
            Self.same(
                try EnvFile.parse(text),
                [("ECHO_PORT", "tcp://10.96.12.7:8080"), ("MIX", "it's \"x\"\n$y"), ("ROOT", "")]))
        #expect(throws: EnvFile.ParseError.self) { try EnvFile.parse(#"{"A": 1}"#, syntax: .json) }
    }

    @Test func malformedFilesNameTheLine() {
        #expect(throws: EnvFile.ParseError(line: 2, reason: "expected KEY=VALUE")) {
            try EnvFile.parse("A=1\njust words\n", syntax: .docker)
        }
        #expect(throws: EnvFile.ParseError(line: 3, reason: "unterminated ' quote")) {
            try EnvFile.parse("A=1\nB=2\nC='open\n", syntax: .sh)
        }
        #expect(throws: EnvFile.ParseError(line: 1, reason: "expected 'export KEY…'")) {
            try EnvFile.parse("A=1\n", syntax: .shExport)
        }
    }
}

@Suite struct InterceptVariableTests {
    /// As the kubelet writes them for `echo-svc` (ports http 80/TCP, dns 53/UDP) and the API server.
    static let pod: [(String, String)] = [
        ("ECHO_SVC_PORT", "tcp://10.96.0.20:80"), ("ECHO_SVC_PORT_53_UDP", "udp://10.96.0.20:53"),
        ("ECHO_SVC_PORT_53_UDP_ADDR", "10.96.0.20"), ("ECHO_SVC_PORT_53_UDP_PORT", "53"),
        ("ECHO_SVC_PORT_80_TCP", "tcp://10.96.0.20:80"), ("ECHO_SVC_PORT_80_TCP_ADDR", "10.96.0.20"),
        ("ECHO_SVC_PORT_80_TCP_PORT", "80"), ("ECHO_SVC_PORT_80_TCP_PROTO", "tcp"),
        ("ECHO_SVC_SERVICE_HOST", "10.96.0.20"),
        ("ECHO_SVC_SERVICE_PORT", "80"), ("ECHO_SVC_SERVICE_PORT_DNS", "53"), ("ECHO_SVC_SERVICE_PORT_HTTP", "80"),
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"), ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
    ]

    @Test func eachTCPPortOfEachServiceGetsOneListenerAndEveryFormIsRewritten() {
        let found = ServiceVariables.find(in: Self.pod)
        #expect(found.ports == [.init(prefix: "ECHO_SVC", service: "echo-svc", host: "10.96.0.20", port: 80)])
        let listener = ListenAddress(host: "127.0.0.1", port: 41000)
        let rewrites = found.rewrites(
            for: found.ports[0], listener: listener, in: Dictionary(Self.pod, uniquingKeysWith: { a, _ in a }))
        #expect(
            rewrites == [
                "ECHO_SVC_SERVICE_HOST": "127.0.0.1", "ECHO_SVC_SERVICE_PORT": "41000",
                "ECHO_SVC_SERVICE_PORT_HTTP": "41000", "ECHO_SVC_PORT": "tcp://127.0.0.1:41000",
                "ECHO_SVC_PORT_80_TCP": "tcp://127.0.0.1:41000", "ECHO_SVC_PORT_80_TCP_ADDR": "127.0.0.1",
                "ECHO_SVC_PORT_80_TCP_PORT": "41000",
            ])
        // The API server only when asked for.
        #expect(
            ServiceVariables.find(in: Self.pod, forced: ["KUBERNETES_SERVICE_HOST"]).ports.map(\.service) == [
                "echo-svc", "kubernetes",
            ])
    }

    @Test(arguments: [
        ("inventory:9000", false, true), ("recommendations.shop.svc.cluster.local:50051", false, true),
        ("db.shop.svc:5432", false, true), ("orders:8080", false, false), ("echo-svc:80", false, true),
        ("example.com:443", false, false), ("example.com:443", true, true), ("http://inventory:9000", false, false),
        ("inventory", false, false), ("inventory:99999", false, false),
    ])
    func hostPortValuesNamingClusterServices(value: String, forced: Bool, rewritten: Bool) {
        let services: Set<String> = ["inventory", "echo-svc"]
        #expect((HostPortValue.parse(value, services: services, forced: forced) != nil) == rewritten, "\(value)")
    }
}
