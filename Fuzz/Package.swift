// swift-tools-version:6.1
//
// libFuzzer targets, one executable per parser, kept out of the root package so that its
// `swift build` / `swift test` never see `-sanitize=fuzzer`. Build and run them with
// scripts/fuzz.sh (scratch path .build-fuzz); the seed corpus is in Fuzz/corpus/<target>/.
// Each target is built with -enable-testing so it can `@testable import` internal parsers.

import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: "fuzz-\(name)", dependencies: dependencies + ["FuzzSupport"], path: "Sources/\(name)",
                      swiftSettings: swiftSettings)
}

let package = Package(
    name: "tiercache-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "swift-tiercache", path: "..")],
    targets: [
        .target(name: "FuzzSupport", path: "Sources/support", swiftSettings: swiftSettings),
        fuzzTarget("envelope", [.product(name: "TierCache", package: "swift-tiercache")]),
        // Uses @GeneratedBinaryCoding through the root package's macro plug-in, built without the
        // fuzzer flags and loaded by scripts/fuzz.sh (Sources/binary/Macro.swift says why).
        fuzzTarget("binary", [.product(name: "TierCache", package: "swift-tiercache")]),
        fuzzTarget("zstd", [
            .product(name: "TierCache", package: "swift-tiercache"),
            .product(name: "TierCacheZstd", package: "swift-tiercache"),
        ]),
        fuzzTarget("lz4", [
            .product(name: "TierCache", package: "swift-tiercache"),
            .product(name: "TierCacheLZ4", package: "swift-tiercache"),
        ]),
        fuzzTarget("s3xml", [.product(name: "TierCacheS3", package: "swift-tiercache")]),
        fuzzTarget("sigv4", [
            .product(name: "TierCache", package: "swift-tiercache"),
            .product(name: "TierCacheS3", package: "swift-tiercache"),
        ]),
        fuzzTarget("disk", [
            .product(name: "TierCache", package: "swift-tiercache"),
            .product(name: "TierCacheDisk", package: "swift-tiercache"),
        ]),
        fuzzTarget("runtime", [
            .product(name: "TierCacheLambda", package: "swift-tiercache"),
            .product(name: "TierCacheHTTP", package: "swift-tiercache"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
