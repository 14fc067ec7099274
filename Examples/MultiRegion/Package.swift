// swift-tools-version:6.1
// A multi-region set-up: one cache bucket per region, the function's own region first, another
// region's bucket as a slower fallback. Depends on swift-tiercache by path, as a user's package
// would by URL.
import PackageDescription

let package = Package(
    name: "MultiRegion",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-tiercache", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "MultiRegion",
            dependencies: [
                .product(name: "TierCache", package: "swift-tiercache"),
                .product(name: "TierCacheHTTP", package: "swift-tiercache"),
                .product(name: "TierCacheS3", package: "swift-tiercache"),
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
