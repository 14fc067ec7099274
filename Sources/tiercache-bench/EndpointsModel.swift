// A Codable model of bench-data/endpoints.json (botocore's endpoint table): partitions ->
// regions and services -> endpoints -> variants. Every field the file uses is modelled, so
// decoding the real file with JSONDecoder and re-encoding it loses nothing the model names.

struct EndpointsDocument: Codable, Equatable, Sendable {
    var partitions: [Partition]
    var version: Int
}

struct Partition: Codable, Equatable, Sendable {
    var defaults: EndpointProperties
    var dnsSuffix: String
    var partition: String
    var partitionName: String
    var regionRegex: String
    var regions: [String: RegionInfo]
    var services: [String: Service]
}

struct RegionInfo: Codable, Equatable, Sendable {
    var description: String
}

struct Service: Codable, Equatable, Sendable {
    var defaults: EndpointProperties?
    var endpoints: [String: EndpointProperties]
    var isRegionalized: Bool?
    var partitionEndpoint: String?
}

/// An endpoint, or the defaults of a service or partition (the same fields).
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

struct CredentialScope: Codable, Equatable, Sendable {
    var region: String?
    var service: String?
}

struct EndpointVariant: Codable, Equatable, Sendable {
    var dnsSuffix: String?
    var hostname: String?
    var tags: [String]
}
