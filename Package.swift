// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "driftcheck",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "driftcheck", targets: ["driftcheck"]),
        .library(name: "DriftcheckCore", targets: ["DriftcheckCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // Pure model and analysis: Foundation only, no sockets, no disk.
        .target(name: "DriftcheckCore"),
        .target(
            name: "DriftcheckStore",
            dependencies: [
                "DriftcheckCore", "CZlib", "CBrotli", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The team store: recordings in PostgreSQL through libpq (docs/decisions.md, "The team store").
        .target(name: "DriftcheckPostgres", dependencies: ["DriftcheckCore", "DriftcheckStore", "CLibPQ"]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .target(
            name: "DriftcheckProxy",
            dependencies: [
                "DriftcheckCore", "DriftcheckCA",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        // The local CA for HTTPS interception: keys and certificates, and their files.
        .target(
            name: "DriftcheckCA",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(name: "CDriftcheckShims"),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CBrotli", pkgConfig: "libbrotlidec", providers: [.apt(["libbrotli-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // XML and XPath for WireMock's equalToXml and matchesXPath: libxml2, not a parser of our own.
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .target(name: "DriftcheckReplay", dependencies: ["DriftcheckCore", "CCurl"]),
        // The one YAML loader: composed and converted by us, never a trap on hostile input.
        .target(name: "DriftcheckYAML", dependencies: [.product(name: "Yams", package: "Yams")]),
        // WireMock mappings evaluated in memory: matching, responses, exports; no disk of its own.
        .target(name: "DriftcheckWireMock", dependencies: ["DriftcheckCore", "CLibXML2"]),
        // Mocks as a comparison meets them: directories, mock.yml processes, running URLs.
        .target(
            name: "DriftcheckMocks",
            dependencies: [
                "DriftcheckCore", "DriftcheckWireMock", "DriftcheckReplay", "DriftcheckProcess", "DriftcheckYAML",
                "DriftcheckGRPC",
            ]
        ),
        .target(name: "DriftcheckProcess", dependencies: ["CDriftcheckShims"]),
        // gRPC descriptors: FileDescriptorSets read with swift-protobuf's descriptor types, into
        // the core's ProtoSchema (no generated code, no build plugin).
        .target(
            name: "DriftcheckGRPC",
            dependencies: [
                "DriftcheckCore", "DriftcheckReplay", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // The comparison as a library call: recordings and mocks in, a report out.
        .target(
            name: "DriftcheckCompare",
            dependencies: [
                "DriftcheckCore", "DriftcheckStore", "DriftcheckMocks", "DriftcheckReplay", "DriftcheckGRPC",
            ]
        ),
        // A built-in dependency to record, and a small HTTP client to drive it: for `demo` and tests.
        .target(
            name: "DriftcheckDemo",
            dependencies: [
                "DriftcheckCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Report writers: a Report in, a String out.
        .target(name: "DriftcheckReports", dependencies: ["DriftcheckCore"]),
        .target(
            name: "DriftcheckCLI",
            dependencies: [
                "DriftcheckCore", "DriftcheckStore", "DriftcheckProxy", "DriftcheckProcess", "DriftcheckDemo",
                "DriftcheckReplay", "DriftcheckMocks", "DriftcheckReports", "DriftcheckYAML", "DriftcheckCompare",
                "DriftcheckCA", "DriftcheckPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "driftcheck", dependencies: ["DriftcheckCLI"]),
        // Benchmark of the store writer alone (scripts/bench-store.sh).
        .executableTarget(name: "driftcheck-bench-store", dependencies: ["DriftcheckStore"]),
        // Floors of what a SwiftNIO proxy reaches on this machine (scripts/bench.sh).
        .executableTarget(
            name: "driftcheck-bench-floor",
            dependencies: [
                "DriftcheckCore", "DriftcheckProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .target(
            name: "DriftcheckTestSupport",
            dependencies: [
                "DriftcheckCore", "DriftcheckDemo", "DriftcheckProcess",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "DriftcheckCoreTests", dependencies: ["DriftcheckCore"]),
        .testTarget(name: "DriftcheckProcessTests", dependencies: ["DriftcheckProcess"]),
        .testTarget(
            name: "DriftcheckCATests", dependencies: ["DriftcheckCA", "DriftcheckProcess", "DriftcheckTestSupport"]),
        .testTarget(
            name: "DriftcheckMocksTests",
            dependencies: ["DriftcheckMocks", "DriftcheckReplay", "DriftcheckTestSupport"]
        ),
        .testTarget(name: "DriftcheckReportsTests", dependencies: ["DriftcheckReports"], exclude: ["Golden"]),
        .testTarget(
            name: "DriftcheckCompareTests",
            dependencies: ["DriftcheckCompare", "DriftcheckMocks", "DriftcheckStore", "DriftcheckTestSupport"]
        ),
        .testTarget(
            name: "DriftcheckStoreTests",
            dependencies: [
                "DriftcheckStore", "DriftcheckPostgres", "DriftcheckTestSupport", "DriftcheckProcess",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "DriftcheckProxyTests",
            dependencies: [
                "DriftcheckProxy", "DriftcheckStore", "DriftcheckProcess", "DriftcheckTestSupport", "DriftcheckCA",
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        .testTarget(
            name: "DriftcheckCLITests",
            dependencies: [
                "DriftcheckCLI", "DriftcheckStore", "DriftcheckPostgres", "DriftcheckProcess", "DriftcheckTestSupport",
                "DriftcheckGRPC",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
