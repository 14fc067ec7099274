// swift-tools-version:6.1
// A tier written outside the library: an HTTP key-value store as a CacheTier, over the library's
// libcurl client. Depends on swift-tiercache by path, as a user's package would by URL.
import PackageDescription

let package = Package(
    name: "CustomBackend",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-tiercache", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "CustomBackend",
            dependencies: [
                .product(name: "TierCache", package: "swift-tiercache"),
                .product(name: "TierCacheHTTP", package: "swift-tiercache"),
                // Only for the demo's loopback key-value server; a real deployment talks to its own.
                .product(name: "TierCacheTesting", package: "swift-tiercache"),
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
