// swift-tools-version:6.1
// A long-running service (not Lambda) with memory + disk + S3 tiers, run by swift-service-lifecycle.
// Depends on swift-tiercache by path, as a user's package would by URL.
import PackageDescription

let package = Package(
    name: "Server",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-tiercache", path: "../.."),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "Server",
            dependencies: [
                .product(name: "TierCache", package: "swift-tiercache"),
                .product(name: "TierCacheDisk", package: "swift-tiercache"),
                .product(name: "TierCacheS3", package: "swift-tiercache"),
                .product(name: "TierCacheHTTP", package: "swift-tiercache"),
                .product(name: "TierCacheZstd", package: "swift-tiercache"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
                .enableUpcomingFeature("InternalImportsByDefault"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
