// A Codable model of bench-data/endpoints.json (botocore's endpoint table): partitions ->
// regions and services -> endpoints -> variants. Every field the file uses is modelled, so
// decoding the real file with JSONDecoder and re-encoding it loses nothing the model names.
// @GeneratedBinaryCoding gives every type compile-time binary coding (the bench compares it
// against the Codable path with `usesGeneratedCode: false`).

import TierCacheMacros

@GeneratedBinaryCoding
struct EndpointsDocument: Codable, Equatable, Sendable {
    var partitions: [Partition]
    var version: Int
}

@GeneratedBinaryCoding
struct Partition: Codable, Equatable, Sendable {
    var defaults: EndpointProperties
    var dnsSuffix: String
    var partition: String
    var partitionName: String
    var regionRegex: String
    var regions: [String: RegionInfo]
    var services: [String: Service]
}

@GeneratedBinaryCoding
struct RegionInfo: Codable, Equatable, Sendable {
    var description: String
}

@GeneratedBinaryCoding
struct Service: Codable, Equatable, Sendable {
    var defaults: EndpointProperties?
    var endpoints: [String: EndpointProperties]
    var isRegionalized: Bool?
    var partitionEndpoint: String?
}

/// An endpoint, or the defaults of a service or partition (the same fields).
@GeneratedBinaryCoding
struct EndpointProperties: Codable, Equatable, Sendable {
    var credentialScope: CredentialScope?
    var deprecated: Bool?
    var dnsSuffix: String?
    var hostname: String?
    var protocols: [String]?
    var signatureVersions: [String]?
    var sslCommonName: String?
    var variants: [EndpointVariant]?
}

@GeneratedBinaryCoding
struct CredentialScope: Codable, Equatable, Sendable {
    var region: String?
    var service: String?
}

@GeneratedBinaryCoding
struct EndpointVariant: Codable, Equatable, Sendable {
    var dnsSuffix: String?
    var hostname: String?
    var tags: [String]
}
