#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import Synchronization
import TierCache
extension DiskTier {
    // MARK: - Paths

    func namespacePath(_ namespace: String) -> String { root + "/ns/" + namespace }

    func shardPath(_ namespace: String, _ fingerprint: Fingerprint) -> String {
        namespacePath(namespace) + "/" + fingerprint.shard
    }

    /// `<root>/ns/<namespace>/<xx>/<fingerprint>`.
    func entryPath(_ namespace: String, _ fingerprint: Fingerprint) -> String {
        let name = fingerprint.description
        return root + "/ns/" + namespace + "/" + name.prefix(2) + "/" + name
    }

    /// Forgets an entry whose file was removed: its record, and its kept descriptor (which would
    /// hold the removed file's disk space).
    func forget(namespace: String, fingerprint: Fingerprint) {
        index.forget(namespace: namespace, fingerprint: fingerprint)
        keptFiles.drop(fingerprint)
    }
}

/// Where files live under a root.
enum DiskLayout {
    /// Shard folders per namespace: the first two hex digits of the fingerprint.
    static let shardCount = 256

    static func shardName(_ index: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[index >> 4], digits[index & 15]], as: UTF8.self)
    }
}

/// Whether `name` is an entry file name: 32 lowercase hex digits (a key fingerprint).
func isEntryFileName(_ name: String) -> Bool {
    let utf8 = name.utf8
    guard utf8.count == 32 else { return false }
    return utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
}
