// swift-tools-version:6.1
// The report function of the case study, as a standalone package on the root by path.
import PackageDescription

let package = Package(
    name: "ReportLambda",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-tiercache", path: "../.."),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "bootstrap",
            dependencies: [
                .product(name: "TierCache", package: "swift-tiercache"),
                .product(name: "TierCacheLambda", package: "swift-tiercache"),
                .product(name: "TierCacheDisk", package: "swift-tiercache"),
                .product(name: "TierCacheS3", package: "swift-tiercache"),
                .product(name: "TierCacheZstd", package: "swift-tiercache"),
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
