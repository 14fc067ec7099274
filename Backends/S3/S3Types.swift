/// An AWS region name, open for regions this build does not know (`RawRepresentable`).
public struct AWSRegion: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The name as S3 writes it.
    public let rawValue: String
    /// Creates a region from its name (`eu-west-1`).
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Creates a region from a string literal.
    public init(stringLiteral value: String) { rawValue = value }

    /// US East (N. Virginia), S3's default.
    public static let usEast1 = AWSRegion(rawValue: "us-east-1")
    /// US East (Ohio).
    public static let usEast2 = AWSRegion(rawValue: "us-east-2")
    /// US West (Oregon).
    public static let usWest2 = AWSRegion(rawValue: "us-west-2")
    /// Europe (Ireland).
    public static let euWest1 = AWSRegion(rawValue: "eu-west-1")
    /// Europe (Frankfurt).
    public static let euCentral1 = AWSRegion(rawValue: "eu-central-1")
    /// Asia Pacific (Tokyo).
    public static let apNortheast1 = AWSRegion(rawValue: "ap-northeast-1")
    /// Asia Pacific (Singapore).
    public static let apSoutheast1 = AWSRegion(rawValue: "ap-southeast-1")

    public var description: String { rawValue }

    /// The DNS suffix of the region's partition (`amazonaws.com`, `amazonaws.com.cn`).
    var dnsSuffix: String { rawValue.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com" }
}

/// An S3 storage class (`x-amz-storage-class`).
public struct S3StorageClass: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The name as S3 writes it.
    public let rawValue: String
    /// Creates a storage class from S3's name for it.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// `STANDARD`.
    public static let standard = S3StorageClass(rawValue: "STANDARD")
    /// `INTELLIGENT_TIERING`.
    public static let intelligentTiering = S3StorageClass(rawValue: "INTELLIGENT_TIERING")
    /// `STANDARD_IA`.
    public static let standardInfrequentAccess = S3StorageClass(rawValue: "STANDARD_IA")
    /// `ONEZONE_IA`.
    public static let oneZoneInfrequentAccess = S3StorageClass(rawValue: "ONEZONE_IA")
    /// `EXPRESS_ONEZONE` (directory buckets).
    public static let expressOneZone = S3StorageClass(rawValue: "EXPRESS_ONEZONE")
    /// `REDUCED_REDUNDANCY`.
    public static let reducedRedundancy = S3StorageClass(rawValue: "REDUCED_REDUNDANCY")
    public var description: String { rawValue }
}

/// Server-side encryption for objects written (`x-amz-server-side-encryption`).
public struct S3ServerSideEncryption: Hashable, Sendable, CustomStringConvertible {
    /// `AES256` or `aws:kms`.
    public let algorithm: String
    /// The KMS key id or ARN, for `aws:kms`; nil uses the account's default S3 key.
    public let kmsKeyID: String?

    /// SSE-S3: keys managed by S3 (`AES256`).
    public static let s3 = S3ServerSideEncryption(algorithm: "AES256", kmsKeyID: nil)
    /// SSE-KMS with the given key (or the default `aws/s3` key when nil).
    public static func kms(keyID: String? = nil) -> S3ServerSideEncryption {
        S3ServerSideEncryption(algorithm: "aws:kms", kmsKeyID: keyID)
    }

    public var description: String { kmsKeyID.map { "\(algorithm)(\($0))" } ?? algorithm }
}

/// How a PutObject proves its bytes arrived intact.
public struct S3Integrity: Hashable, Sendable {
    let kind: UInt8
    /// `Content-MD5` (base64 MD5 of the body): accepted by every S3-compatible store.
    public static let contentMD5 = S3Integrity(kind: 1)
    /// `x-amz-checksum-crc32c` (base64 CRC32C of the body): S3's flexible checksums; cheaper.
    public static let crc32c = S3Integrity(kind: 2)
    /// No integrity header (the SigV4 payload hash still covers the body).
    public static let none = S3Integrity(kind: 0)
}

/// Options for ``S3Client/putObject(bucket:key:body:options:deadline:)``.
public struct S3PutOptions: Sendable {
    /// `Content-Type`; `application/octet-stream` by default.
    public var contentType: String?
    /// User metadata, sent as `x-amz-meta-<name>` (names are lower-cased by S3).
    public var metadata: [String: String]
    /// Integrity header; ``S3Integrity/crc32c`` by default.
    public var integrity: S3Integrity
    /// `If-None-Match` value: `"*"` makes the write succeed only if the key does not exist
    /// (first writer wins); otherwise S3 answers 412 and the call throws
    /// ``S3Error/Code/preconditionFailed``.
    public var ifNoneMatch: String?
    /// `If-Match` value: an ETag the object must still have for the write to succeed (a
    /// compare-and-swap); otherwise S3 answers 412 (``S3Error/Code/preconditionFailed``), or 404
    /// (``S3Error/Code/noSuchKey``) when the object is gone.
    public var ifMatch: String? = nil
    /// Server-side encryption, or nil for the bucket's default.
    public var serverSideEncryption: S3ServerSideEncryption?
    /// Storage class, or nil for the bucket's default (`STANDARD`).
    public var storageClass: S3StorageClass?
    /// `Cache-Control`, if any.
    public var cacheControl: String?

    /// Creates options.
    public init(contentType: String? = "application/octet-stream", metadata: [String: String] = [:],
                integrity: S3Integrity = .crc32c, ifNoneMatch: String? = nil,
                serverSideEncryption: S3ServerSideEncryption? = nil, storageClass: S3StorageClass? = nil,
                cacheControl: String? = nil) {
        self.contentType = contentType
        self.metadata = metadata
        self.integrity = integrity
        self.ifNoneMatch = ifNoneMatch
        self.serverSideEncryption = serverSideEncryption
        self.storageClass = storageClass
        self.cacheControl = cacheControl
    }
}

/// An object, or its head, as S3 returned it.
public struct S3Object: Sendable {
    /// The body (empty for HeadObject and for a 304).
    public var body: [UInt8]
    /// The entity tag, quotes included as S3 sends it.
    public var etag: String?
    /// User metadata (`x-amz-meta-*`), names lower-cased without the prefix.
    public var metadata: [String: String]
    /// The object's size in bytes (`Content-Length`).
    public var contentLength: Int
    /// `Content-Type`.
    public var contentType: String?
    /// `Last-Modified`, as sent (an HTTP date).
    public var lastModified: String?
    /// `x-amz-storage-class` (absent for STANDARD).
    public var storageClass: String?
    /// `x-amz-server-side-encryption`.
    public var serverSideEncryption: String?
    /// True when the GetObject sent `If-None-Match` and S3 answered 304: the stored copy whose ETag
    /// was sent is still current and ``body`` is empty.
    public var isNotModified: Bool
    /// `x-amz-version-id`, in a versioned bucket.
    public var versionID: String? = nil
}

/// The result of a PutObject.
public struct S3PutResult: Sendable {
    /// The new object's entity tag.
    public var etag: String?
    /// The version id, in a versioned bucket.
    public var versionID: String?
}

/// One object in a listing.
public struct S3ObjectSummary: Sendable, Hashable {
    /// The key.
    public var key: String
    /// The size in bytes.
    public var size: Int
    /// The entity tag.
    public var etag: String?
    /// `LastModified`, as S3 wrote it (ISO 8601).
    public var lastModified: String?
    /// The storage class.
    public var storageClass: String?
}

/// One page of a ListObjectsV2.
public struct S3ListPage: Sendable {
    /// The objects on this page, in key order.
    public var objects: [S3ObjectSummary]
    /// Pass to the next call to get the next page; nil on the last page.
    public var nextContinuationToken: String?
}

/// A lifecycle rule that expires objects under a prefix after a number of days.
public struct S3LifecycleRule: Sendable, Hashable {
    /// The rule's id (unique in the bucket's configuration).
    public var id: String
    /// The key prefix the rule applies to (empty for the whole bucket).
    public var prefix: String
    /// Days after creation when objects expire.
    public var expirationDays: Int
    /// Whether the rule is enabled.
    public var isEnabled: Bool

    /// Creates a rule.
    public init(id: String, prefix: String, expirationDays: Int, isEnabled: Bool = true) {
        self.id = id
        self.prefix = prefix
        self.expirationDays = expirationDays
        self.isEnabled = isEnabled
    }
}

/// CRC-32C (Castagnoli), as S3's `x-amz-checksum-crc32c` uses it.
enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for byte in bytes { crc = t[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return ~crc
    }
}
