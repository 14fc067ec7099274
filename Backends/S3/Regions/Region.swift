#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An AWS region: the S3 tier's ``AWSRegion`` under its short name.
///
/// Open: `Region(rawValue: "xx-new-1")` works for a region newer than this library; such a
/// region gets its partition from its name prefix and has no coordinates (it sorts after every
/// known region in distance ordering). Static members cover every commercial, China and
/// GovCloud region known when `scripts/generate-regions.py` last ran.
public typealias Region = AWSRegion

/// An AWS partition: a set of regions that share credentials, a DNS suffix and an ARN prefix.
public struct AWSPartition: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The partition id in ARNs (`aws`, `aws-cn`, `aws-us-gov`).
    public let rawValue: String
    /// Creates a partition from its id.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The commercial partition.
    public static let aws = AWSPartition(rawValue: "aws")
    /// China (Beijing, Ningxia).
    public static let awsChina = AWSPartition(rawValue: "aws-cn")
    /// AWS GovCloud (US).
    public static let awsGovCloud = AWSPartition(rawValue: "aws-us-gov")

    /// The DNS suffix of the partition's endpoints (`amazonaws.com`, `amazonaws.com.cn`).
    public var dnsSuffix: String { self == .awsChina ? "amazonaws.com.cn" : "amazonaws.com" }
    public var description: String { rawValue }
}

/// What the library knows about a region (generated from AWS's endpoints.json).
struct RegionInfo: Sendable {
    var description: String
    var partition: AWSPartition
    var s3Host: String
    var latitude: Double
    var longitude: Double
}

extension AWSRegion {
    /// Every region this library knows, sorted by name.
    public static var allKnown: [AWSRegion] { generatedTable.keys.sorted().map(AWSRegion.init(rawValue:)) }

    /// Whether the region is in the generated table.
    public var isKnown: Bool { Self.generatedTable[rawValue] != nil }

    /// AWS's name for the region (`Europe (Ireland)`), or the raw value for an unknown region.
    public var displayName: String { Self.generatedTable[rawValue]?.description ?? rawValue }

    /// The region's partition: from the table, else from the name (`cn-` China, `us-gov-`
    /// GovCloud, anything else commercial).
    public var partition: AWSPartition {
        if let info = Self.generatedTable[rawValue] { return info.partition }
        if rawValue.hasPrefix("cn-") { return .awsChina }
        if rawValue.hasPrefix("us-gov-") { return .awsGovCloud }
        return .aws
    }

    /// The host of the region's S3 endpoint (`s3.eu-west-1.amazonaws.com`,
    /// `s3.cn-north-1.amazonaws.com.cn`).
    public var s3Host: String { Self.generatedTable[rawValue]?.s3Host ?? "s3.\(rawValue).\(partition.dnsSuffix)" }

    /// Approximate latitude and longitude of the region's metro area, in degrees; nil for a
    /// region unknown to this library.
    public var coordinates: (latitude: Double, longitude: Double)? {
        Self.generatedTable[rawValue].map { ($0.latitude, $0.longitude) }
    }

    /// Great-circle distance to another region in kilometres (haversine on a 6371 km sphere);
    /// nil when either region has no coordinates.
    public func distance(to other: AWSRegion) -> Double? {
        guard let a = coordinates, let b = other.coordinates else { return nil }
        let rad = Double.pi / 180
        let dLat = (b.latitude - a.latitude) * rad
        let dLon = (b.longitude - a.longitude) * rad
        let sinLat: Double = sin(dLat / 2)
        let sinLon: Double = sin(dLon / 2)
        let cosProduct: Double = cos(a.latitude * rad) * cos(b.latitude * rad)
        let h: Double = sinLat * sinLat + cosProduct * sinLon * sinLon
        let arc: Double = asin(min(1, h.squareRoot()))
        return 2 * 6371 * arc
    }

    /// `regions` ordered by distance from this region: itself first, then nearest first; regions
    /// without coordinates last in their given order. Ties keep the given order.
    public func byDistance(_ regions: [AWSRegion]) -> [AWSRegion] {
        regions.enumerated().sorted { x, y in
            let dx = x.element == self ? 0 : distance(to: x.element)
            let dy = y.element == self ? 0 : distance(to: y.element)
            switch (dx, dy) {
            case let (a?, b?): return a != b ? a < b : x.offset < y.offset
            case (_?, nil): return true
            case (nil, _?): return false
            case (nil, nil): return x.offset < y.offset
            }
        }.map(\.element)
    }
}
