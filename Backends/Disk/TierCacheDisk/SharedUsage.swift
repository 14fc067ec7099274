#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache

/// The bytes and entries a root holds, as every process using the root sees them.
struct UsageCounters: Equatable {
    var bytes: UInt64 = 0
    var entries: UInt64 = 0
}

/// The root's `usage` file: two counters shared by every process using the root, read and
/// changed only under an exclusive `flock(2)` on that file.
///
/// Every change to the set of entry files (rename into place, unlink) happens inside
/// ``withLock(_:)``, so the counters move with the files. The lock is an advisory `flock`: the
/// kernel drops it when a process dies, so a SIGKILLed holder never wedges the others. `flock`
/// locks belong to an open file description, which the threads of this process share, so an
/// in-process ``Lock`` is taken first.
final class SharedUsage: @unchecked Sendable {
    private static let magic: UInt32 = 0x5544_4354  // "TCDU" little-endian
    private static let size = 32

    private let path: String
    private let fileSystem: FileSystem
    private let lock = Lock()
    // Guarded by `lock`.
    private var fd: Int32 = -1

    init(root: String, fileSystem: FileSystem) {
        path = root + "/usage"
        self.fileSystem = fileSystem
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Runs `body` with the counters under the cross-process lock and writes them back if changed.
    /// - Throws: ``IOFailure`` when the usage file cannot be opened or locked (a read-only or
    ///   vanished root); `body` is then not run. Rethrows what `body` throws.
    func withLock<T>(_ body: (inout UsageCounters) throws -> T) throws -> T {
        try lock.withLock {
            let fd = try openLocked()
            defer { _ = flock(fd, LOCK_UN) }
            var counters = read(fd)
            let before = counters
            let result = try body(&counters)
            if counters != before { write(counters, to: fd) }
            return result
        }
    }

    /// The counters right now (taking the lock briefly), or nil when the root has no usage file.
    func snapshot() -> UsageCounters? {
        try? withLock { $0 }
    }

    // Called with `lock` held. Opens the file if needed, reopens it if the root vanished (the file
    // we hold was unlinked), and returns it locked.
    private func openLocked() throws -> Int32 {
        if let e = fileSystem.faults?.inject(.lockFile, path) {
            throw IOFailure(operation: "lock", path: path, errno: e)
        }
        for _ in 0..<2 {
            if fd < 0 {
                let opened = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
                guard opened >= 0 else { throw IOFailure(operation: "open", path: path, errno: errno) }
                fd = opened
            }
            while flock(fd, LOCK_EX) != 0 {
                if errno != EINTR { throw IOFailure(operation: "flock", path: path, errno: errno) }
            }
            var st = stat()
            if fstat(fd, &st) == 0, st.st_nlink > 0 { return fd }
            // The root was removed under us: start a new usage file (counting from zero).
            close(fd)
            fd = -1
        }
        throw IOFailure(operation: "open", path: path, errno: ENOENT)
    }

    private func read(_ fd: Int32) -> UsageCounters {
        var buffer = [UInt8](repeating: 0, count: Self.size)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Self.size, 0) }
        guard n == Self.size else { return UsageCounters() }
        return buffer.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            guard reader.readLE(UInt32.self) == Self.magic, reader.readLE(UInt32.self) == 1,
                  let bytes = reader.readLE(UInt64.self), let entries = reader.readLE(UInt64.self)
            else { return UsageCounters() }
            return UsageCounters(bytes: bytes, entries: entries)
        }
    }

    private func write(_ counters: UsageCounters, to fd: Int32) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(Self.size)
        buffer.appendLE(Self.magic)
        buffer.appendLE(UInt32(1))
        buffer.appendLE(counters.bytes)
        buffer.appendLE(counters.entries)
        buffer.appendLE(UInt64(0))
        _ = buffer.withUnsafeBytes { pwrite(fd, $0.baseAddress, Self.size, 0) }
    }
}
