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

    /// Takes one entry of `size` bytes off the counters (saturating at zero).
    mutating func release(_ size: UInt64) {
        bytes = bytes >= size ? bytes - size : 0
        entries = entries > 0 ? entries - 1 : 0
    }
}

/// The root's `usage` file: two counters shared by every process using the root, read and
/// changed only under an exclusive `flock(2)` on that file.
///
/// Every change to the set of entry files (rename into place, unlink) updates the counters under
/// this lock, so the counters move with the files. The lock is an advisory `flock`: the kernel
/// drops it when a process dies, so a SIGKILLed holder never wedges the others, and it is taken
/// with non-blocking attempts until the operation's deadline (``LockDeadline``), so a *stopped*
/// holder cannot either. `flock` locks belong to an open file description, which the threads of
/// this process share, so an in-process ``Lock`` is held while the `flock` is (never while
/// waiting for it).
///
/// The file is opened relative to the verified root's descriptor, without following a symbolic
/// link; anything but a regular file at its name (a link to a file of the user's, a FIFO) is
/// removed and a new file made, so the counters are never written through a name to anything else.
final class SharedUsage: @unchecked Sendable {
    private static let magic: UInt32 = 0x5544_4354  // "TCDU" little-endian
    private static let size = 32
    static let fileName = "usage"

    private let fileSystem: FileSystem
    private let lock = Lock()
    // Guarded by `lock`: the open usage file, and the root it was opened in.
    private var fd: Int32 = -1
    private var openedIn: ObjectIdentifier?

    init(fileSystem: FileSystem) {
        self.fileSystem = fileSystem
    }

    deinit {
        if fd >= 0 { fileSystem.close(fd) }
    }

    /// Runs `body` with the counters under the cross-process lock and writes them back if changed.
    /// - Parameters:
    ///   - root: The verified root whose counters these are.
    ///   - deadline: Until when to wait for another process holding the lock.
    /// - Throws: ``IOFailure`` when the usage file cannot be opened or locked before the deadline
    ///   (``IOFailure/lockTimeout(_:)``); `body` is then not run. Rethrows what `body` throws.
    func withLock<T>(in root: RootHandle, until deadline: inout LockDeadline, _ body: (inout UsageCounters) throws -> T) throws -> T {
        let path = root.path + "/" + Self.fileName
        while true {
            let outcome: T? = try lock.withLock {
                let fd = try openFile(in: root, path: path)
                guard try fileSystem.tryLock(fd, path: path) else { return nil }
                defer { fileSystem.unlock(fd) }
                var counters = try read(fd, path: path)
                let before = counters
                let result = try body(&counters)
                if counters != before { try write(counters, to: fd, path: path) }
                return result
            }
            if let outcome { return outcome }
            guard deadline.pauseBeforeNextAttempt(fileSystem) else { throw IOFailure.lockTimeout(path) }
        }
    }

    /// The counters right now (waiting for the lock at most `wait`), or nil when the root has no
    /// readable usage file or the lock could not be had.
    func snapshot(in root: RootHandle, wait: Duration) -> UsageCounters? {
        var deadline = LockDeadline(after: wait)
        return try? withLock(in: root, until: &deadline) { $0 }
    }

    // Called with `lock` held: the usage file of `root`, opened if needed (again, when the root
    // was replaced or the file removed).
    private func openFile(in root: RootHandle, path: String) throws(IOFailure) -> Int32 {
        if fd >= 0, openedIn == ObjectIdentifier(root), let st = try? fileSystem.status(fd, path: path), st.st_nlink > 0 {
            return fd
        }
        if fd >= 0 {
            fileSystem.close(fd)
            fd = -1
        }
        for _ in 0..<2 {
            switch try fileSystem.openOrCreate(Self.fileName, in: root.directory, path: path) {
            case .opened(let opened):
                let st = try fileSystem.status(opened, path: path)
                if FileSystem.isRegularFile(st) {
                    fd = opened
                    openedIn = ObjectIdentifier(root)
                    return opened
                }
                fileSystem.close(opened)
                try removeForeign(in: root, isFolder: FileSystem.isDirectory(st), path: path)
            case .notPlain:
                try removeForeign(in: root, isFolder: false, path: path)
            case .absent, .wouldBlock, .unsupported:
                break
            }
        }
        throw IOFailure(operation: "open", path: path, errno: ELOOP)
    }

    /// Removes what has the usage file's name and is not a regular file (a symbolic link, a
    /// FIFO, an empty folder): its name only, never what a link points to.
    private func removeForeign(in root: RootHandle, isFolder: Bool, path: String) throws(IOFailure) {
        try fileSystem.remove(Self.fileName, in: root.directory, folder: isFolder, path: path)
    }

    private func read(_ fd: Int32, path: String) throws(IOFailure) -> UsageCounters {
        let buffer = try fileSystem.readPrefix(fd, count: Self.size, path: path)
        guard buffer.count == Self.size else { return UsageCounters() }
        return buffer.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            guard reader.readLE(UInt32.self) == Self.magic, reader.readLE(UInt32.self) == 1,
                  let bytes = reader.readLE(UInt64.self), let entries = reader.readLE(UInt64.self)
            else { return UsageCounters() }
            return UsageCounters(bytes: bytes, entries: entries)
        }
    }

    private func write(_ counters: UsageCounters, to fd: Int32, path: String) throws(IOFailure) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(Self.size)
        buffer.appendLE(Self.magic)
        buffer.appendLE(UInt32(1))
        buffer.appendLE(counters.bytes)
        buffer.appendLE(counters.entries)
        buffer.appendLE(UInt64(0))
        let failure = buffer.withUnsafeBytes { raw -> IOFailure? in
            do throws(IOFailure) {
                try fileSystem.writeBlock(raw, to: fd, at: 0, path: path)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }
}
