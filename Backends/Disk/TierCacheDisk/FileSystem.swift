import CTierCacheDisk
import TierCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which one, on what, and the `errno`.
struct IOFailure: Error, CustomStringConvertible {
    var operation: String
    var path: String
    var errno: Int32

    /// A short stable name for metrics (`ENOSPC`, `EACCES`, …).
    var reason: String {
        switch errno {
        case ENOSPC: "ENOSPC"
        case EACCES: "EACCES"
        case EPERM: "EPERM"
        case EROFS: "EROFS"
        case ENOENT: "ENOENT"
        case EDQUOT: "EDQUOT"
        case EIO: "EIO"
        case ENOTDIR: "ENOTDIR"
        default: "errno\(errno)"
        }
    }

    var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno))) (\(reason))"
    }
}

/// Faults injected into the disk tier's file-system calls, for tests: before each call the
/// closure is asked, and a non-nil `errno` makes the call fail with it without being made.
package struct DiskFaults: Sendable {
    /// The kinds of call that can be made to fail.
    package enum Operation: Sendable, Hashable {
        case createTemporary, write, rename, makeDirectory, openForRead, remove, lockFile
    }

    package var inject: @Sendable (Operation, String) -> Int32?

    package init(_ inject: @escaping @Sendable (Operation, String) -> Int32?) {
        self.inject = inject
    }

    /// No faults.
    package static let none = DiskFaults { _, _ in nil }
}

/// The file-system calls the tier makes, with fault injection and `EINTR` retries.
struct FileSystem: Sendable {
    let faults: DiskFaults?

    @inline(__always)
    private func injected(_ operation: DiskFaults.Operation, _ path: String) -> Int32? {
        guard let faults else { return nil }
        return faults.inject(operation, path)
    }

    /// Creates a new file, failing if it exists; mode 0600.
    func createExclusive(_ path: String) throws(IOFailure) -> Int32 {
        if let e = injected(.createTemporary, path) { throw IOFailure(operation: "create", path: path, errno: e) }
        while true {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 { return fd }
            if errno != EINTR { throw IOFailure(operation: "create", path: path, errno: errno) }
        }
    }

    /// Opens a file for reading; nil when it does not exist.
    func openForRead(_ path: String) throws(IOFailure) -> Int32? {
        if let e = injected(.openForRead, path) { throw IOFailure(operation: "open", path: path, errno: e) }
        while true {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 { return fd }
            switch errno {
            case EINTR: continue
            case ENOENT, ENOTDIR: return nil
            default: throw IOFailure(operation: "open", path: path, errno: errno)
            }
        }
    }

    /// Whether an injected fault makes opening `path` for reading fail now (tests): a read from a
    /// kept descriptor stands in for an open, so it honours the same faults.
    func injectsOpenFault(_ path: @autoclosure () -> String) -> Bool {
        guard let faults else { return false }
        return faults.inject(.openForRead, path()) != nil
    }

    /// The result of an attempt to open a file without blocking.
    enum CachedOpen {
        case opened(Int32)
        case absent
        /// Opening would need disk I/O (or the kernel cannot promise it would not).
        case wouldBlock
        /// This kernel or sandbox has no `openat2(RESOLVE_CACHED)`.
        case unsupported
    }

    /// Opens a file for reading only if the kernel can do it from its caches.
    func openCached(_ path: String) throws(IOFailure) -> CachedOpen {
        try path.withCString { openCached(relativeTo: AT_FDCWD, path: $0) }.get()
    }

    /// ``openCached(_:)`` for a C string `path`, relative to the open folder `directory` unless
    /// it is absolute (the read path builds it on the stack).
    func openCached(relativeTo directory: Int32, path: UnsafePointer<CChar>) -> Result<CachedOpen, IOFailure> {
        if faults != nil, let e = injected(.openForRead, String(cString: path)) {
            return .failure(IOFailure(operation: "open", path: String(cString: path), errno: e))
        }
        while true {
            let fd = ctiercachedisk_openat_cached(directory, path, O_RDONLY | O_CLOEXEC)
            if fd >= 0 { return .success(.opened(fd)) }
            switch errno {
            case EINTR: continue
            case ENOENT, ENOTDIR: return .success(.absent)
            case EAGAIN: return .success(.wouldBlock)
            case ENOSYS, EINVAL, EPERM, EOPNOTSUPP, E2BIG: return .success(.unsupported)
            default: return .failure(IOFailure(operation: "open", path: String(cString: path), errno: errno))
            }
        }
    }

    /// What reading an entry file gave.
    enum EntryRead {
        /// The envelope verified and is the expected key's; its payload is the array the file's
        /// payload bytes were read into (no copy). `checksum` is the envelope's.
        case entry(CacheEntry, checksum: UInt64)
        /// Every byte of the file, which is not a plain envelope of the expected key (corrupt,
        /// another key, an ETag or tags): ``CacheEntry/init(decoding:)`` decides what it is.
        case bytes([UInt8])
        /// Fewer than `size` bytes came: the file was cut short meanwhile, or (without blocking)
        /// the page cache does not hold all of it.
        case incomplete
    }

    /// Reads the `size`-byte entry file `fd` for `key` with one `preadv` into three buffers: the
    /// header a plain envelope of `key` has (predicted from the key), an array of the payload's
    /// length that becomes the entry's payload as is, and the checksum; then verifies it
    /// (``CacheEntry/decode(header:payload:checksum:expecting:verifiedChecksum:)``).
    /// - Parameters:
    ///   - nowait: read from the page cache only (`RWF_NOWAIT`); any error then.
    ///   - verifiedChecksum: the checksum this very file had when its payload was last verified
    ///     (same inode, size and times: ``FileVersion``); the payload's XXH64 pass is then skipped.
    /// - Throws: ``IOFailure`` when a read fails (`EAGAIN` when `nowait` and the disk is needed).
    func readEntry(_ fd: Int32, size: Int, key: CacheKey, nowait: Bool, verifiedChecksum: UInt64?, path: String) throws(IOFailure) -> EntryRead {
        let headerLength = CacheEntry.plainHeaderLength(for: key)
        let payloadLength = size - headerLength - 8
        guard payloadLength >= 0 else {
            // Shorter than any envelope of this key: read it whole for the full decode to judge.
            var read = (count: 0, errno: Int32(0))
            let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
                read = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 1) { vectors in
                    vectors.initializeElement(at: 0, to: iovec(iov_base: UnsafeMutableRawPointer(buffer.baseAddress), iov_len: size))
                    return readSegments(fd, vectors, nowait: nowait)
                }
                initialized = read.count
            }
            if read.errno != 0 { throw IOFailure(operation: "read", path: path, errno: read.errno) }
            return read.count == size ? .bytes(bytes) : .incomplete
        }
        let outcome: Result<EntryRead, IOFailure> = withUnsafeTemporaryAllocation(byteCount: headerLength + 8, alignment: 8) { scratch in
            let scratchBase = scratch.baseAddress!
            var read = (count: 0, errno: Int32(0))
            let payload = [UInt8](unsafeUninitializedCapacity: payloadLength) { buffer, initialized in
                read = withUnsafeTemporaryAllocation(of: iovec.self, capacity: 3) { vectors in
                    vectors.initializeElement(at: 0, to: iovec(iov_base: scratchBase, iov_len: headerLength))
                    vectors.initializeElement(at: 1, to: iovec(iov_base: UnsafeMutableRawPointer(buffer.baseAddress), iov_len: payloadLength))
                    vectors.initializeElement(at: 2, to: iovec(iov_base: scratchBase + headerLength, iov_len: 8))
                    return readSegments(fd, vectors, nowait: nowait)
                }
                initialized = read.count == size ? payloadLength : 0
            }
            if read.errno != 0 { return .failure(IOFailure(operation: "read", path: path, errno: read.errno)) }
            if read.count < size { return .success(.incomplete) }
            let header = UnsafeRawBufferPointer(start: scratchBase, count: headerLength)
            let checksum = UInt64(littleEndian: scratchBase.loadUnaligned(fromByteOffset: headerLength, as: UInt64.self))
            if let entry = CacheEntry.decode(
                header: header, payload: payload, checksum: checksum, expecting: key, verifiedChecksum: verifiedChecksum)
            {
                return .success(.entry(entry, checksum: checksum))
            }
            var whole = [UInt8]()
            whole.reserveCapacity(size)
            whole.append(contentsOf: header)
            whole.append(contentsOf: payload)
            whole.append(contentsOf: UnsafeRawBufferPointer(start: scratchBase + headerLength, count: 8))
            return .success(.bytes(whole))
        }
        return try outcome.get()
    }

    /// Fills the buffers `vectors` describes, in order from the file's offset 0 (as few calls as
    /// the kernel allows; the vectors are consumed); returns the bytes read, fewer than asked when
    /// the file ends first or, with `nowait`, when the page cache holds no more; and the `errno` of
    /// a failed call (0 when none failed).
    private func readSegments(_ fd: Int32, _ vectors: UnsafeMutableBufferPointer<iovec>, nowait: Bool) -> (count: Int, errno: Int32) {
        let total = vectors.reduce(0) { $0 + $1.iov_len }
        var done = 0
        var first = 0
        while done < total {
            let n = ctiercachedisk_preadv(fd, vectors.baseAddress! + first, Int32(vectors.count - first), off_t(done), nowait ? 1 : 0)
            if n < 0 {
                if errno == EINTR { continue }
                return (done, errno)
            }
            if n == 0 { break }
            done += n
            var consumed = n
            while first < vectors.count, consumed >= vectors[first].iov_len {
                consumed -= vectors[first].iov_len
                first += 1
            }
            if first < vectors.count, consumed > 0 {
                vectors[first].iov_base = vectors[first].iov_base.map { $0 + consumed }
                vectors[first].iov_len -= consumed
            }
        }
        return (done, 0)
    }

    /// Runs `body` holding an exclusive `flock` on `directory` (every change to the entry files of
    /// one shard folder happens under it, in every process).
    /// - Throws: ``IOFailure`` when the folder cannot be opened or locked; rethrows `body`'s errors.
    func withDirectoryLock<T>(_ directory: String, _ body: () throws -> T) throws -> T {
        if let e = injected(.lockFile, directory) { throw IOFailure(operation: "lock", path: directory, errno: e) }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw IOFailure(operation: "open", path: directory, errno: errno) }
        defer { close(fd) }  // closing the descriptor drops the lock
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw IOFailure(operation: "flock", path: directory, errno: errno) }
        }
        return try body()
    }

    /// Writes every byte.
    func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(IOFailure) {
        if let e = injected(.write, path) { throw IOFailure(operation: "write", path: path, errno: e) }
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = write(fd, pointer, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                throw IOFailure(operation: "write", path: path, errno: errno)
            }
            remaining -= n
            pointer += n
        }
    }

    /// Reads up to `count` bytes from offset 0; fewer when the file is shorter.
    func readPrefix(_ fd: Int32, count: Int, path: String) throws(IOFailure) -> [UInt8] {
        var failure: IOFailure?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var offset = 0
            while offset < count {
                let n = pread(fd, buffer.baseAddress! + offset, count - offset, off_t(offset))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = IOFailure(operation: "read", path: path, errno: errno)
                    break
                }
                if n == 0 { break }
                offset += n
            }
            initialized = offset
        }
        if let failure { throw failure }
        return bytes
    }

    func fsyncFile(_ fd: Int32, path: String) throws(IOFailure) {
        if fsync(fd) != 0 { throw IOFailure(operation: "fsync", path: path, errno: errno) }
    }

    func fsyncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    func renameFile(_ from: String, _ to: String) throws(IOFailure) {
        if let e = injected(.rename, to) { throw IOFailure(operation: "rename", path: to, errno: e) }
        if rename(from, to) != 0 { throw IOFailure(operation: "rename", path: to, errno: errno) }
    }

    /// Removes a file; false when it did not exist.
    @discardableResult
    func removeFile(_ path: String) throws(IOFailure) -> Bool {
        if let e = injected(.remove, path) { throw IOFailure(operation: "unlink", path: path, errno: e) }
        if unlink(path) == 0 { return true }
        if errno == ENOENT || errno == ENOTDIR { return false }
        throw IOFailure(operation: "unlink", path: path, errno: errno)
    }

    /// `stat` of a path; nil when it does not exist.
    func status(_ path: String) throws(IOFailure) -> stat? {
        var st = stat()
        if stat(path, &st) == 0 { return st }
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw IOFailure(operation: "stat", path: path, errno: errno)
    }

    func status(_ fd: Int32, path: String) throws(IOFailure) -> stat {
        var st = stat()
        if fstat(fd, &st) == 0 { return st }
        throw IOFailure(operation: "fstat", path: path, errno: errno)
    }

    /// Creates `path` and any missing parents, each with mode 0700.
    func makeDirectories(_ path: String) throws(IOFailure) {
        if let e = injected(.makeDirectory, path) { throw IOFailure(operation: "mkdir", path: path, errno: e) }
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        guard errno == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex else {
            throw IOFailure(operation: "mkdir", path: path, errno: errno)
        }
        try makeDirectories(String(path[..<slash]))
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        throw IOFailure(operation: "mkdir", path: path, errno: errno)
    }

    /// The names in a folder (without `.` and `..`); empty when it does not exist or cannot be read.
    func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }
}
