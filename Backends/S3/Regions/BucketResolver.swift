public import TierCache

/// One place an entry can live: a bucket in a region, with how to reach and sign for it.
public struct BucketTarget: Sendable, Hashable, CustomStringConvertible {
    /// How requests to the target are signed.
    public struct Signing: Sendable, Hashable {
        let regionSet: String?
        /// SigV4 for the target's region (regular buckets).
        public static let sigV4 = Signing(regionSet: nil)
        /// SigV4a for a region set (Multi-Region Access Points; `*` for any region).
        public static func sigV4a(regionSet: String = "*") -> Signing { Signing(regionSet: regionSet) }
        /// Whether this is SigV4a.
        public var isSigV4a: Bool { regionSet != nil }
        /// The SigV4a region set, nil for SigV4.
        public var sigV4aRegionSet: String? { regionSet }
    }

    /// The region the bucket is in (and SigV4 signs for).
    public var region: Region
    /// The bucket name (or a Multi-Region Access Point alias).
    public var bucket: String
    /// A custom endpoint URL (`http://127.0.0.1:9000`, a VPC endpoint); nil for the region's
    /// S3 endpoint (``AWSRegion/s3Host``).
    public var endpoint: String?
    /// A key prefix for this target, replacing the tier's; nil keeps the tier's prefix.
    public var prefix: String?
    /// How requests are signed.
    public var signing: Signing
    /// How the bucket goes into URLs; nil for the tier's client template's (virtual-hosted or
    /// path-style). ``S3Client/AddressingStyle/accessPoint`` when the endpoint is the bucket's own.
    public var addressingStyle: S3Client.AddressingStyle?

    /// Creates a target.
    public init(region: Region, bucket: String, endpoint: String? = nil, prefix: String? = nil, signing: Signing = .sigV4,
                addressingStyle: S3Client.AddressingStyle? = nil) {
        self.region = region
        self.bucket = bucket
        self.endpoint = endpoint
        self.prefix = prefix
        self.signing = signing
        self.addressingStyle = addressingStyle
    }

    /// The endpoint requests go to: ``endpoint`` or `https://` + the region's S3 host.
    public var resolvedEndpoint: String { endpoint ?? "https://" + region.s3Host }

    /// `region/bucket`, the target's identity in logs, metrics and the circuit breaker.
    public var description: String { region.rawValue + "/" + bucket }
}

/// What a resolver is asked for.
public struct BucketOperation: Sendable, Hashable, CustomStringConvertible {
    let kind: UInt8
    /// A read (get): the targets in the order to try them.
    public static let read = BucketOperation(kind: 0)
    /// A write (put): every target that must receive it.
    public static let write = BucketOperation(kind: 1)
    /// A removal: every target that may hold the key.
    public static let remove = BucketOperation(kind: 2)
    public var description: String { ["read", "write", "remove"][Int(kind)] }
}

/// Decides which buckets a multi-region S3 tier uses for an operation on a key.
///
/// For ``BucketOperation/read`` the answer is the order to try (the tier skips targets whose
/// circuit is open and fails over down the list); for ``BucketOperation/write`` every target
/// written (the first is the home target, whose failure fails the write); for
/// ``BucketOperation/remove`` every target that may hold the key. Called once per operation,
/// on the caller's task: keep it fast and non-blocking.
public protocol BucketResolver: Sendable {
    /// The targets for an operation on a key; never empty.
    func targets(for operation: BucketOperation, key: CacheKey) -> [BucketTarget]
}

/// Where writes go in a multi-bucket resolver.
public struct WritePolicy: Sendable, Hashable {
    let replicates: Bool
    /// Writes go to the home region's bucket only.
    public static let home = WritePolicy(replicates: false)
    /// Writes go to every bucket (home first): replicate-on-write.
    public static let everyBucket = WritePolicy(replicates: true)
}

/// One bucket in one region for everything.
public struct FixedBucketResolver: BucketResolver {
    /// The target.
    public let target: BucketTarget
    /// Creates the resolver.
    public init(_ target: BucketTarget) { self.target = target }
    public func targets(for operation: BucketOperation, key: CacheKey) -> [BucketTarget] { [target] }
}

/// A bucket per region with a home region for writes. Reads go to the function's own region
/// first, then the others nearest first (great-circle distance between region coordinates;
/// regions without coordinates last, in their given order), or in the given order when no
/// current region is set.
public struct RegionalBucketResolver: BucketResolver {
    /// The targets, in the order given.
    public let buckets: [BucketTarget]
    /// The region whose bucket receives writes.
    public let home: Region
    /// Where writes go.
    public let writes: WritePolicy
    /// The read order, computed once.
    public let readOrder: [BucketTarget]
    private let writeOrder: [BucketTarget]

    /// Creates the resolver.
    /// - Parameters:
    ///   - buckets: one target per region (regions must be distinct).
    ///   - home: the home region; nil for the first target's.
    ///   - current: the region the code runs in (a Lambda's `AWS_REGION`); nil keeps the given
    ///     order for reads.
    ///   - writes: home only, or every bucket.
    /// - Throws: ``TierCacheError`` `invalidConfiguration` for no buckets, a repeated region, or
    ///   a home region without a bucket.
    public init(buckets: [BucketTarget], home: Region? = nil, current: Region? = nil, writes: WritePolicy = .home) throws {
        guard let first = buckets.first else {
            throw TierCacheError(.invalidConfiguration, "no buckets configured")
        }
        var seen = Set<Region>()
        for target in buckets where !seen.insert(target.region).inserted {
            throw TierCacheError(.invalidConfiguration, "region \(target.region) has more than one bucket")
        }
        let home = home ?? first.region
        guard let homeTarget = buckets.first(where: { $0.region == home }) else {
            throw TierCacheError(.invalidConfiguration, "home region \(home) has no bucket")
        }
        self.buckets = buckets
        self.home = home
        self.writes = writes
        if let current {
            let order = current.byDistance(buckets.map(\.region))
            readOrder = order.compactMap { region in buckets.first { $0.region == region } }
        } else {
            readOrder = buckets
        }
        writeOrder = writes.replicates ? [homeTarget] + buckets.filter { $0.region != home } : [homeTarget]
    }

    /// The home region's target.
    public var homeTarget: BucketTarget { writeOrder[0] }

    public func targets(for operation: BucketOperation, key: CacheKey) -> [BucketTarget] {
        switch operation {
        case .read: readOrder
        case .write: writeOrder
        default: [homeTarget] + buckets.filter { $0.region != home }
        }
    }
}

/// A resolver that asks a closure, for users with their own rules.
public struct ClosureBucketResolver: BucketResolver {
    private let body: @Sendable (BucketOperation, CacheKey) -> [BucketTarget]
    /// Creates the resolver; the closure must return at least one target.
    public init(_ body: @escaping @Sendable (BucketOperation, CacheKey) -> [BucketTarget]) { self.body = body }
    public func targets(for operation: BucketOperation, key: CacheKey) -> [BucketTarget] { body(operation, key) }
}

extension BucketResolver where Self == FixedBucketResolver {
    /// One bucket in one region.
    public static func fixed(region: Region, bucket: String, endpoint: String? = nil, prefix: String? = nil) -> FixedBucketResolver {
        FixedBucketResolver(BucketTarget(region: region, bucket: bucket, endpoint: endpoint, prefix: prefix))
    }

    /// A Multi-Region Access Point, addressed as the AWS SDKs address it: requests go to
    /// `https://<alias>.accesspoint.s3-global.amazonaws.com/<key>` (the key is the whole path; the
    /// alias is not repeated in it) and are signed with SigV4a for `regionSet`.
    /// - Parameters:
    ///   - alias: the access point's alias (`mfzwi23gnjvgw.mrap`), or its ARN
    ///     (`arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap`). It names the target in logs
    ///     and metrics.
    ///   - regionSet: the SigV4a region set: `*` (any region, as the SDKs sign) or a
    ///     comma-separated list of the access point's regions.
    ///   - endpoint: the URL the access point is reached at; nil for the global endpoint above.
    ///     The key is its path, as on the global endpoint.
    public static func multiRegionAccessPoint(alias: String, regionSet: String = "*", endpoint: String? = nil) -> FixedBucketResolver {
        let name = alias.hasPrefix("arn:") ? String(alias.split(separator: "/", maxSplits: 1).last ?? Substring(alias)) : alias
        return FixedBucketResolver(BucketTarget(
            region: .usEast1, bucket: name,
            endpoint: endpoint ?? "https://\(name).accesspoint.s3-global.amazonaws.com",
            signing: .sigV4a(regionSet: regionSet), addressingStyle: .accessPoint))
    }
}

extension BucketResolver where Self == RegionalBucketResolver {
    /// A bucket per region, read in the given order (home first is common), written per
    /// `writes`.
    /// - Throws: as ``RegionalBucketResolver/init(buckets:home:current:writes:)``.
    public static func perRegion(_ buckets: [BucketTarget], home: Region? = nil, writes: WritePolicy = .home) throws -> RegionalBucketResolver {
        try RegionalBucketResolver(buckets: buckets, home: home, current: nil, writes: writes)
    }

    /// A bucket per region, read nearest first from `current` (so a function in eu-central-1
    /// reads eu-west-1 before us-east-1).
    /// - Throws: as ``RegionalBucketResolver/init(buckets:home:current:writes:)``.
    public static func nearest(_ buckets: [BucketTarget], from current: Region, home: Region? = nil,
                               writes: WritePolicy = .home) throws -> RegionalBucketResolver {
        try RegionalBucketResolver(buckets: buckets, home: home, current: current, writes: writes)
    }
}

extension BucketResolver where Self == ClosureBucketResolver {
    /// A resolver that asks `body` for every operation.
    public static func custom(_ body: @escaping @Sendable (BucketOperation, CacheKey) -> [BucketTarget]) -> ClosureBucketResolver {
        ClosureBucketResolver(body)
    }
}
