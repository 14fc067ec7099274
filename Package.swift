// swift-tools-version:6.1
//
// One product per module so that a service links only what it uses: a function that wants
// memory + S3 does not link liblz4. Sections below are grouped by area; add a new module to the
// section it belongs to.

import CompilerPluginSupport
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

var products: [Product] = []
var targets: [Target] = []

// MARK: Core
products += [
    .library(name: "TierCache", targets: ["TierCache"]),
    .library(name: "TierCacheTesting", targets: ["TierCacheTesting"]),
    .executable(name: "tiercache-demo", targets: ["tiercache-demo"]),
]
targets += [
    .target(
        name: "TierCache",
        dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        swiftSettings: swiftSettings
    ),
    .target(
        name: "TierCacheTesting",
        dependencies: [
            "TierCache",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ],
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheTests",
        dependencies: ["TierCache", "TierCacheTesting", "TierCacheMacros"],
        swiftSettings: swiftSettings
    ),
    // Proves that a tier written outside the library plugs in through the public API alone.
    .testTarget(
        name: "ThirdPartyTierTests",
        dependencies: ["TierCache"],
        swiftSettings: swiftSettings
    ),
]

// MARK: Macros
// @GeneratedBinaryCoding: the binary serializer's coding generated at compile time. A product of
// its own, so that only packages that use it build swift-syntax (a package that depends on
// TierCache alone resolves swift-syntax but never compiles it).
products += [
    .library(name: "TierCacheMacros", targets: ["TierCacheMacros"]),
]
targets += [
    .macro(
        name: "TierCacheMacrosPlugin",
        dependencies: [
            .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
            .product(name: "SwiftDiagnostics", package: "swift-syntax"),
            .product(name: "SwiftSyntax", package: "swift-syntax"),
            .product(name: "SwiftSyntaxBuilder", package: "swift-syntax"),
            .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
        ],
        swiftSettings: swiftSettings
    ),
    .target(
        name: "TierCacheMacros",
        dependencies: ["TierCache", "TierCacheMacrosPlugin"],
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheMacrosTests",
        dependencies: [
            "TierCacheMacrosPlugin",
            .product(name: "SwiftSyntax", package: "swift-syntax"),
            .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
            .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
        ],
        swiftSettings: swiftSettings
    ),
]

// MARK: HTTP
// The libcurl client shared by the S3 tier and the Lambda adapter.
products += [
    .library(name: "TierCacheHTTP", targets: ["TierCacheHTTP"]),
]
targets += [
    .systemLibrary(
        name: "CTierCacheCurl",
        path: "Sources/CTierCacheCurl",
        pkgConfig: "libcurl",
        providers: [.apt(["libcurl4-openssl-dev"])]
    ),
    .target(
        name: "TierCacheHTTP",
        dependencies: [
            "CTierCacheCurl",
            "TierCache",
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheHTTPTests",
        dependencies: ["TierCacheHTTP", "TierCacheTesting", "TierCache"],
        swiftSettings: swiftSettings
    ),
]

// MARK: Codecs
// zstd and lz4 over the system libraries (pkg-config libzstd / liblz4). C is touched only in the
// CTierCache* shims and the one Swift module that wraps each.
products += [
    .library(name: "TierCacheZstd", targets: ["TierCacheZstd"]),
    .library(name: "TierCacheLZ4", targets: ["TierCacheLZ4"]),
]
targets += [
    .systemLibrary(
        name: "CTierCacheZstd",
        path: "Codecs/CTierCacheZstd",
        pkgConfig: "libzstd",
        providers: [.apt(["libzstd-dev"]), .brew(["zstd"])]
    ),
    .systemLibrary(
        name: "CTierCacheLZ4",
        path: "Codecs/CTierCacheLZ4",
        pkgConfig: "liblz4",
        providers: [.apt(["liblz4-dev"]), .brew(["lz4"])]
    ),
    .target(
        name: "TierCacheZstd",
        dependencies: ["TierCache", "CTierCacheZstd"],
        path: "Codecs/Zstd",
        swiftSettings: swiftSettings
    ),
    .target(
        name: "TierCacheLZ4",
        dependencies: ["TierCache", "CTierCacheLZ4"],
        path: "Codecs/LZ4",
        swiftSettings: swiftSettings
    ),
    // Corpus, seeded generator, frame mutation and limit checks shared by the two codec test targets.
    .target(name: "CodecTestSupport", dependencies: ["TierCache"], path: "Tests/CodecTestSupport", swiftSettings: swiftSettings),
    .testTarget(
        name: "TierCacheZstdTests",
        dependencies: ["TierCache", "TierCacheZstd", "CodecTestSupport"],
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheLZ4Tests",
        dependencies: ["TierCache", "TierCacheLZ4", "CodecTestSupport"],
        swiftSettings: swiftSettings
    ),
]

// MARK: Backends
products += [
    .library(name: "TierCacheDisk", targets: ["TierCacheDisk"]),
]
targets += [
    // Header-only shim: openat2(RESOLVE_CACHED) and preadv2(RWF_NOWAIT) for non-blocking reads.
    .systemLibrary(name: "CTierCacheDisk", path: "Backends/Disk/CTierCacheDisk"),
    .target(
        name: "TierCacheDisk",
        dependencies: [
            "TierCache",
            "CTierCacheDisk",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        path: "Backends/Disk/TierCacheDisk",
        swiftSettings: swiftSettings
    ),
    // A child process for the disk tier's crash and multi-process tests (not a product).
    .executableTarget(
        name: "tiercache-disk-helper",
        dependencies: ["TierCache", "TierCacheDisk"],
        path: "Tests/TierCacheDiskHelper",
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheDiskTests",
        dependencies: [
            "TierCache", "TierCacheDisk", "TierCacheTesting", "tiercache-disk-helper",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ],
        swiftSettings: swiftSettings
    ),
]
products += [
    .library(name: "TierCacheS3", targets: ["TierCacheS3"]),
]
targets += [
    .target(
        name: "TierCacheS3",
        dependencies: [
            "TierCache",
            "TierCacheHTTP",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        path: "Backends/S3",
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheS3Tests",
        dependencies: [
            "TierCacheS3", "TierCache", "TierCacheTesting", "TierCacheHTTP",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ],
        swiftSettings: swiftSettings
    ),
]

// MARK: Lambda
// The Runtime API adapter: INIT hydration, freeze-safe flushes, EMF metrics.
products += [
    .library(name: "TierCacheLambda", targets: ["TierCacheLambda"]),
]
targets += [
    .target(
        name: "TierCacheLambda",
        dependencies: [
            "TierCache",
            "TierCacheHTTP",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ],
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheLambdaTests",
        dependencies: [
            "TierCacheLambda", "TierCacheTesting", "TierCache", "TierCacheHTTP", "TierCacheS3",
            // The report function runs as a child process in the init-failure and end-to-end tests.
            "tiercache-demo",
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: swiftSettings
    ),
]

// The baseline the demo compares start-up against: a Swift hello world, no dependencies.
targets += [
    .executableTarget(name: "tiercache-hello", path: "Sources/tiercache-hello", swiftSettings: swiftSettings),
]

// The cold-start demo (`./scripts/demo.sh`): child processes of the report function
// (Examples/ReportLambda, whose function source it shares) against the Runtime API emulator.
targets += [
    .executableTarget(
        name: "tiercache-demo",
        dependencies: [
            "TierCache", "TierCacheLambda", "TierCacheDisk", "TierCacheS3", "TierCacheZstd", "TierCacheTesting",
            "tiercache-hello",
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: swiftSettings
    ),
]

// MARK: CLI
// The operator tool `tiercache`. Its logic lives in TierCacheCLI (no product: not a library for
// users) so that tests drive commands in-process; the executable is a two-line main.
products += [
    .executable(name: "tiercache", targets: ["tiercache"]),
]
targets += [
    .target(
        name: "TierCacheCLI",
        dependencies: [
            "TierCache",
            "TierCacheDisk",
            "TierCacheS3",
            "TierCacheHTTP",
            "TierCacheZstd",
            "TierCacheLZ4",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ],
        path: "Sources/TierCacheCLI",
        swiftSettings: swiftSettings
    ),
    .executableTarget(
        name: "tiercache",
        dependencies: ["TierCacheCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "tiercacheTests",
        dependencies: [
            "TierCacheCLI", "tiercache", "TierCache", "TierCacheDisk", "TierCacheS3", "TierCacheZstd",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ],
        swiftSettings: swiftSettings
    ),
]

// MARK: Hardening
// Chaos tests over the whole chain through the fault proxy, and the bounded soak
// (scripts/soak.sh). Fuzz targets live in Fuzz/, a package of their own (scripts/fuzz.sh).
targets += [
    .testTarget(
        name: "TierCacheChaosTests",
        dependencies: [
            "TierCache", "TierCacheDisk", "TierCacheS3", "TierCacheHTTP", "TierCacheTesting",
            .product(name: "Logging", package: "swift-log"),
        ],
        swiftSettings: swiftSettings
    ),
    // Not a product: a test tool run by scripts/soak.sh.
    .executableTarget(
        name: "tiercache-soak",
        dependencies: ["TierCache", "TierCacheDisk", "TierCacheS3", "TierCacheTesting"],
        path: "Tests/TierCacheSoak",
        swiftSettings: swiftSettings
    ),
]

// MARK: Stampede
// One environment of a cold-start burst against S3, with or without the lease (distributed
// single-flight): scripts/stampede.sh starts many at once; TierCacheStampedeTests spawns it to
// check that the loader runs once and that a killed lease holder is taken over. Not a product.
targets += [
    .executableTarget(
        name: "tiercache-stampede",
        dependencies: [
            "TierCache", "TierCacheS3",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ],
        swiftSettings: swiftSettings
    ),
    .testTarget(
        name: "TierCacheStampedeTests",
        dependencies: ["tiercache-stampede", "TierCache", "TierCacheS3"],
        swiftSettings: swiftSettings
    ),
]

// MARK: Benchmarks
targets += [
    .executableTarget(
        name: "tiercache-bench",
        dependencies: [
            "TierCache",
            "TierCacheHTTP",
            "TierCacheZstd",
            "TierCacheLZ4",
            "TierCacheDisk",
            "TierCacheS3",
            "TierCacheTesting",
            "TierCacheMacros",
        ],
        swiftSettings: swiftSettings
    ),
]
products += [
    .executable(name: "tiercache-bench", targets: ["tiercache-bench"]),
]

let package = Package(
    name: "swift-tiercache",
    platforms: [.macOS(.v15)],
    products: products,
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        // Matches the Swift 6.3 toolchain (swift-syntax majors follow compiler releases).
        .package(url: "https://github.com/swiftlang/swift-syntax.git", "603.0.1"..<"604.0.0"),
    ],
    targets: targets,
    swiftLanguageModes: [.v6]
)
