#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache

/// Where files live under a root: `usage`, and `ns/<namespace>/<xx>/<fingerprint>`, where `xx` is
/// the fingerprint's first two hex digits (docs/disk-tier.md, "Layout").
enum DiskLayout {
    /// Shard folders per namespace: the first two hex digits of the fingerprint.
    static let shardCount = 256

    static func shardName(_ index: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[index >> 4], digits[index & 15]], as: UTF8.self)
    }

    /// The prefix of a write's temporary file: `.tmp.<fingerprint>.<pid>.<n>`.
    static let temporaryPrefix = ".tmp."
}

/// Whether `name` is an entry file name: 32 lowercase hex digits (a key fingerprint).
func isEntryFileName(_ name: String) -> Bool {
    let utf8 = name.utf8
    guard utf8.count == 32 else { return false }
    return utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
}

extension DiskTier {
    // MARK: - Paths (for messages; every call goes through folder descriptors)

    func namespacePath(_ namespace: String) -> String { root + "/ns/" + namespace }

    func shardPath(_ namespace: String, _ shard: String) -> String { namespacePath(namespace) + "/" + shard }

    /// `<root>/ns/<namespace>/<xx>/<fingerprint>`.
    func entryPath(_ namespace: String, _ fingerprint: Fingerprint) -> String {
        let name = fingerprint.description
        return root + "/ns/" + namespace + "/" + name.prefix(2) + "/" + name
    }

    // MARK: - Folders

    /// Opens the shard folder `ns/<namespace>/<shard>` of the verified root `handle`, one folder
    /// at a time, never following a symbolic link.
    /// - Parameter create: make the folders that are missing (0700); a symbolic link or a file
    ///   where one of them belongs is removed first (it sits inside the verified root, where only
    ///   this user can have put it) and counted (``Statistics/unexpectedFiles``).
    /// - Returns: the open folder; nil when a folder is missing and `create` is false.
    /// - Throws: ``IOFailure``: `ELOOP` / `ENOTDIR` when a folder on the way is a link or not a
    ///   folder and `create` is false; `ENOENT` when the root was removed meanwhile.
    func openShard(_ handle: RootHandle, namespace: String, shard: String, create: Bool) throws(IOFailure) -> Int32? {
        guard let namespaceFolder = try openFolder(namespace, in: handle.namespaces, path: namespacePath(namespace), create: create) else {
            return nil
        }
        defer { fileSystem.close(namespaceFolder) }
        return try openFolder(shard, in: namespaceFolder, path: shardPath(namespace, shard), create: create)
    }

    /// One step of ``openShard(_:namespace:shard:create:)``.
    func openFolder(_ name: String, in parent: Int32, path: @autoclosure () -> String, create: Bool) throws(IOFailure) -> Int32? {
        var replaced = false
        for _ in 0..<3 {
            do {
                if let folder = try fileSystem.openDirectory(name, in: parent, path: path()) { return folder }
                guard create else { return nil }
                try fileSystem.makeDirectory(name, in: parent, path: path())
            } catch where create && !replaced && (error.errno == ELOOP || error.errno == ENOTDIR) {
                // A link or a file where our folder belongs: remove that name (never what a link
                // points to) and make the folder.
                guard (try? fileSystem.remove(name, in: parent, path: path())) == true else { throw error }
                noteUnexpected(path(), "a symbolic link or file where a folder belongs; removed")
                replaced = true
            }
        }
        throw IOFailure(operation: "open", path: path(), errno: ENOENT)
    }

    /// Writes `<namespace>/<xx>/<fingerprint>`, NUL-terminated, into a buffer on the stack and
    /// passes it to `body`: the path of an entry relative to the root's `ns` folder, for one
    /// `openat2` call.
    func withRelativeEntryPath<T>(_ namespace: String, _ fingerprint: Fingerprint, _ body: (UnsafePointer<CChar>) -> T) -> T {
        var namespace = namespace
        return namespace.withUTF8 { name in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: name.count + 37) { path -> T in
                let base = path.baseAddress!
                base.initialize(from: name.baseAddress!, count: name.count)
                let digits = base + name.count + 4
                fingerprint.writeDigits(to: digits)
                base[name.count] = UInt8(ascii: "/")
                base[name.count + 1] = digits[0]
                base[name.count + 2] = digits[1]
                base[name.count + 3] = UInt8(ascii: "/")
                base[name.count + 36] = 0
                return base.withMemoryRebound(to: CChar.self, capacity: name.count + 37) { body($0) }
            }
        }
    }

    /// Forgets an entry whose file was removed: its record, and its kept descriptor (which would
    /// hold the removed file's disk space).
    func forget(namespace: String, fingerprint: Fingerprint) {
        index.forget(namespace: namespace, fingerprint: fingerprint)
        keptFiles.drop(fingerprint)
    }
}
