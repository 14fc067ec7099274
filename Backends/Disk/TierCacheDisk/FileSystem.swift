import CTierCacheDisk
import Synchronization
import TierCache
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `close(2)`, for the layer's methods (inside ``FileSystem`` the name is its own method's).
private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }

/// A failed system call: which one, on what, and the `errno`.
struct IOFailure: Error, CustomStringConvertible {
    var operation: String
    var path: String
    var errno: Int32

    /// A lock another process held until the operation's deadline passed (``FileSystem/lock(_:until:path:)``).
    static func lockTimeout(_ path: String) -> IOFailure {
        IOFailure(operation: "lock", path: path, errno: EWOULDBLOCK)
    }

    /// Whether this is ``lockTimeout(_:)``.
    var isLockTimeout: Bool { operation == "lock" && errno == EWOULDBLOCK }

    /// A short stable name for metrics (`ENOSPC`, `EACCES`, `lockTimeout`, …).
    var reason: String {
        if isLockTimeout { return "lockTimeout" }
        switch errno {
        case ENOSPC: return "ENOSPC"
        case EACCES: return "EACCES"
        case EPERM: return "EPERM"
        case EROFS: return "EROFS"
        case ENOENT: return "ENOENT"
        case EDQUOT: return "EDQUOT"
        case EIO: return "EIO"
        case ENOTDIR: return "ENOTDIR"
        case ELOOP: return "ELOOP"
        case EISDIR: return "EISDIR"
        case EMFILE: return "EMFILE"
        case ENFILE: return "ENFILE"
        default: return "errno\(errno)"
        }
    }

    var description: String {
        if isLockTimeout { return "\(path): still locked by another process at the operation's deadline (lockTimeout)" }
        return "\(operation) \(path): \(String(cString: strerror(errno))) (\(reason))"
    }
}

/// Faults injected into the disk tier's system calls, for tests: before each call the closure is
/// asked, and a non-nil `errno` makes the call fail with it without being made. Every system call
/// the tier makes goes through ``FileSystem``, so each one can be made to fail.
package struct DiskFaults: Sendable {
    /// The kinds of call that can be made to fail.
    package enum Operation: Sendable, Hashable, CaseIterable {
        /// Creating a write's temporary file (`openat` with `O_CREAT | O_EXCL`).
        case createTemporary
        /// Writing to a file (`write`).
        case write
        /// Writing over bytes a file has already (`pwrite` of the `usage` file's counters, which
        /// needs no new space on the disk).
        case writeInPlace
        /// `renameat`.
        case rename
        /// `mkdirat`, `mkdir`.
        case makeDirectory
        /// Opening an entry file, or the `usage` file (`openat`, `openat2`).
        case openForRead
        /// Opening a folder (`openat` with `O_DIRECTORY`, `openat2`).
        case openDirectory
        /// `unlinkat`.
        case remove
        /// `flock`; `EWOULDBLOCK` makes the attempt find the lock held by another process.
        case lockFile
        /// `fstat`, `fstatat`.
        case status
        /// Reading a file (`preadv`, `pread`).
        case read
        /// `fsync`.
        case sync
        /// Setting a file's times (`futimens`).
        case touch
        /// Listing a folder (`fdopendir`, `readdir`).
        case list
        /// `close` of a file the tier wrote.
        case close
        /// `statvfs`.
        case fileSystemStatus
    }

    package var inject: @Sendable (Operation, String) -> Int32?

    package init(_ inject: @escaping @Sendable (Operation, String) -> Int32?) {
        self.inject = inject
    }

    /// No faults.
    package static let none = DiskFaults { _, _ in nil }
}

/// The system calls the disk tier makes: every one goes through here (nothing else in the module
/// calls the C library or the `CTierCacheDisk` shim for file work), with fault injection
/// (``DiskFaults``) and `EINTR` retries.
///
/// Everything below the verified root is reached relative to an open folder (`openat`,
/// `mkdirat`, `renameat`, `unlinkat`, `fstatat`), one name at a time or through `openat2` with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and every open has `O_NOFOLLOW` and `O_NONBLOCK`:
/// a symbolic link is never followed (the call fails with `ELOOP`), and a FIFO or device where a
/// file should be cannot make an open wait. Callers then `fstat` what they opened and use it only
/// if it is what they expected (``isRegularFile(_:)``).
///
/// The `path` arguments only name the file in errors and for fault injection (they are built
/// only when one is needed); the call itself uses the folder descriptor and the name.
struct FileSystem: Sendable {
    let faults: DiskFaults?

    @inline(__always)
    private func injected(_ operation: DiskFaults.Operation, _ path: () -> String) -> Int32? {
        guard let faults else { return nil }
        return faults.inject(operation, path())
    }

    /// Flags every open of a file or folder carries.
    private static let openFlags = O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC

    // MARK: - Folders

    /// Opens the folder `name` inside the open folder `parent`; nil when nothing has that name.
    /// - Throws: ``IOFailure`` with `ELOOP` when `name` is a symbolic link, `ENOTDIR` when it is
    ///   something else than a folder, or the call's other errors.
    func openDirectory(_ name: String, in parent: Int32, path: @autoclosure () -> String) throws(IOFailure) -> Int32? {
        if let e = injected(.openDirectory, path) { throw IOFailure(operation: "open", path: path(), errno: e) }
        while true {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | Self.openFlags)
            if fd >= 0 { return fd }
            switch errno {
            case EINTR: continue
            case ENOENT: return nil
            default: throw IOFailure(operation: "open", path: path(), errno: errno)
            }
        }
    }

    /// Opens a folder by its whole path, following symbolic links in it: only for the folder that
    /// holds the root, which the configuration names (the root itself is opened with
    /// ``openDirectory(_:in:path:)`` and checked). Nil when it does not exist.
    func openDirectory(atPath path: String) throws(IOFailure) -> Int32? {
        if let e = injected(.openDirectory, { path }) { throw IOFailure(operation: "open", path: path, errno: e) }
        while true {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { return fd }
            switch errno {
            case EINTR: continue
            case ENOENT: return nil
            default: throw IOFailure(operation: "open", path: path, errno: errno)
            }
        }
    }

    /// Creates the folder `name` (mode 0700) inside the open folder `parent`; false when something
    /// already has that name (which the caller then opens and checks).
    @discardableResult
    func makeDirectory(_ name: String, in parent: Int32, path: @autoclosure () -> String) throws(IOFailure) -> Bool {
        if let e = injected(.makeDirectory, path) { throw IOFailure(operation: "mkdir", path: path(), errno: e) }
        if mkdirat(parent, name, 0o700) == 0 { return true }
        if errno == EEXIST { return false }
        throw IOFailure(operation: "mkdir", path: path(), errno: errno)
    }

    /// Creates the folder `path` and any missing parents, each with mode 0700 (the folders above a
    /// configured root that does not exist yet).
    func makeDirectories(atPath path: String) throws(IOFailure) {
        if let e = injected(.makeDirectory, { path }) { throw IOFailure(operation: "mkdir", path: path, errno: e) }
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        guard errno == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex else {
            throw IOFailure(operation: "mkdir", path: path, errno: errno)
        }
        try makeDirectories(atPath: String(path[..<slash]))
        if mkdir(path, 0o700) == 0 || errno == EEXIST { return }
        throw IOFailure(operation: "mkdir", path: path, errno: errno)
    }

    /// The names in the open folder `directory` (without `.` and `..`); empty when it cannot be
    /// read. `directory` stays open and is read from its start.
    func names(in directory: Int32, path: @autoclosure () -> String) -> [String] {
        if injected(.list, path) != nil { return [] }
        // fdopendir takes the descriptor it is given, and reading moves its offset: give it a
        // descriptor of its own (not a `dup`, which would share the offset with other threads
        // listing the same folder).
        let own = openat(directory, ".", O_RDONLY | O_DIRECTORY | Self.openFlags)
        guard own >= 0 else { return [] }
        guard let stream = fdopendir(own) else {
            _ = closeDescriptor(own)
            return []
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: - Files

    /// What opening a name gave.
    enum Opened {
        case opened(Int32)
        /// Nothing has that name (or a folder on the way is missing).
        case absent
        /// The name, or a folder on the way, is a symbolic link (`ELOOP`), or a folder on the way
        /// is not a folder (`ENOTDIR`): something the tier did not make.
        case notPlain
        /// Opening would have to wait for the disk (only when asked not to).
        case wouldBlock
        /// `openat2` (or the flag asked for) is not available here.
        case unsupported
    }

    /// Creates the new file `name` in the open folder `directory`, failing if the name exists
    /// (whatever it is); mode 0600.
    func createExclusive(_ name: String, in directory: Int32, path: @autoclosure () -> String) throws(IOFailure) -> Int32 {
        if let e = injected(.createTemporary, path) { throw IOFailure(operation: "create", path: path(), errno: e) }
        while true {
            let fd = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | Self.openFlags, 0o600)
            if fd >= 0 { return fd }
            if errno != EINTR { throw IOFailure(operation: "create", path: path(), errno: errno) }
        }
    }

    /// Opens the file `name` in the open folder `directory` for reading, without following a
    /// symbolic link and without waiting on a FIFO.
    func openFile(_ name: String, in directory: Int32, path: @autoclosure () -> String) throws(IOFailure) -> Opened {
        if let e = injected(.openForRead, path) { throw IOFailure(operation: "open", path: path(), errno: e) }
        while true {
            let fd = openat(directory, name, O_RDONLY | Self.openFlags)
            if fd >= 0 { return .opened(fd) }
            switch errno {
            case EINTR: continue
            case ENOENT: return .absent
            case ELOOP, ENOTDIR: return .notPlain
            default: throw IOFailure(operation: "open", path: path(), errno: errno)
            }
        }
    }

    /// Opens, or creates (mode 0600), the file `name` in the open folder `directory` for reading
    /// and writing, without following a symbolic link (the root's `usage` file).
    func openOrCreate(_ name: String, in directory: Int32, path: @autoclosure () -> String) throws(IOFailure) -> Opened {
        if let e = injected(.openForRead, path) { throw IOFailure(operation: "open", path: path(), errno: e) }
        while true {
            let fd = openat(directory, name, O_RDWR | O_CREAT | Self.openFlags, 0o600)
            if fd >= 0 { return .opened(fd) }
            switch errno {
            case EINTR: continue
            case ELOOP: return .notPlain
            default: throw IOFailure(operation: "open", path: path(), errno: errno)
            }
        }
    }

    /// Opens the file at `relativePath` (a C string: `<namespace>/<xx>/<fingerprint>`) below the
    /// open folder `directory` for reading with one `openat2` call that refuses symbolic links on
    /// the way and paths leaving `directory`; with `cachedOnly`, only if the kernel can resolve it
    /// from its caches (so the call cannot block).
    func openBeneath(_ relativePath: UnsafePointer<CChar>, in directory: Int32, cachedOnly: Bool) -> Result<Opened, IOFailure> {
        while true {
            // An injected errno is taken as the call's own: ENOSYS stands for a kernel without
            // openat2 (the callers then walk the folders), EAGAIN for an uncached lookup.
            let injectedErrno = faults == nil ? nil : injected(.openForRead) { String(cString: relativePath) }
            let fd = injectedErrno != nil ? -1
                : ctiercachedisk_openat_beneath(directory, relativePath, O_RDONLY | Self.openFlags, cachedOnly ? 1 : 0)
            if fd >= 0 { return .success(.opened(fd)) }
            switch injectedErrno ?? errno {
            case EINTR: continue
            case ENOENT: return .success(.absent)
            case ELOOP, ENOTDIR, EXDEV: return .success(.notPlain)
            case EAGAIN: return .success(.wouldBlock)
            case ENOSYS, EINVAL, EPERM, EOPNOTSUPP, E2BIG: return .success(.unsupported)
            case let code: return .failure(IOFailure(operation: "open", path: String(cString: relativePath), errno: code))
            }
        }
    }

    /// `fstat` of an open file.
    func status(_ fd: Int32, path: @autoclosure () -> String) throws(IOFailure) -> stat {
        if let e = injected(.status, path) { throw IOFailure(operation: "fstat", path: path(), errno: e) }
        var st = stat()
        if fstat(fd, &st) == 0 { return st }
        throw IOFailure(operation: "fstat", path: path(), errno: errno)
    }

    /// `fstatat` of the name `name` in the open folder `directory`, not following a symbolic link
    /// (it describes the link itself); nil when nothing has that name.
    func status(_ name: String, in directory: Int32, path: @autoclosure () -> String) throws(IOFailure) -> stat? {
        if let e = injected(.status, path) { throw IOFailure(operation: "stat", path: path(), errno: e) }
        var st = stat()
        if fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) == 0 { return st }
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw IOFailure(operation: "stat", path: path(), errno: errno)
    }

    /// This process's effective user: the owner a root must have.
    func effectiveUserID() -> uid_t { geteuid() }

    /// Whether `st` describes a regular file (not a link, FIFO, socket, device or folder).
    static func isRegularFile(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFREG }

    /// Whether `st` describes a folder.
    static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }

    /// A short name for the kind of file `st` describes, for logs.
    static func kind(_ st: stat) -> String {
        switch st.st_mode & S_IFMT {
        case S_IFREG: "regular file"
        case S_IFDIR: "folder"
        case S_IFLNK: "symbolic link"
        case S_IFIFO: "FIFO"
        case S_IFSOCK: "socket"
        case S_IFCHR: "character device"
        case S_IFBLK: "block device"
        default: "file of type \(String(st.st_mode & S_IFMT, radix: 8))"
        }
    }

    /// Renames `from` to `to`, both names in the open folder `directory` (replacing `to`
    /// atomically if it exists).
    func rename(_ from: String, to: String, in directory: Int32, path: @autoclosure () -> String) throws(IOFailure) {
        if let e = injected(.rename, path) { throw IOFailure(operation: "rename", path: path(), errno: e) }
        if renameat(directory, from, directory, to) != 0 { throw IOFailure(operation: "rename", path: path(), errno: errno) }
    }

    /// Removes the name `name` from the open folder `directory` (a link, not what it points to);
    /// with `folder`, an empty folder. False when nothing had that name.
    @discardableResult
    func remove(_ name: String, in directory: Int32, folder: Bool = false, path: @autoclosure () -> String) throws(IOFailure) -> Bool {
        if let e = injected(.remove, path) { throw IOFailure(operation: "unlink", path: path(), errno: e) }
        if unlinkat(directory, name, folder ? AT_REMOVEDIR : 0) == 0 { return true }
        if errno == ENOENT || errno == ENOTDIR { return false }
        throw IOFailure(operation: "unlink", path: path(), errno: errno)
    }

    /// Writes every byte at the file's offset.
    func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: @autoclosure () -> String) throws(IOFailure) {
        if let e = injected(.write, path) { throw IOFailure(operation: "write", path: path(), errno: e) }
        guard var pointer = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = write(fd, pointer, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                throw IOFailure(operation: "write", path: path(), errno: errno)
            }
            remaining -= n
            pointer += n
        }
    }

    /// Writes `bytes` at `offset` (one `pwrite`; the `usage` file's 32 bytes).
    func writeBlock(_ bytes: UnsafeRawBufferPointer, to fd: Int32, at offset: Int, path: @autoclosure () -> String) throws(IOFailure) {
        if let e = injected(.writeInPlace, path) { throw IOFailure(operation: "write", path: path(), errno: e) }
        while true {
            let n = pwrite(fd, bytes.baseAddress, bytes.count, off_t(offset))
            if n == bytes.count { return }
            if n < 0, errno == EINTR { continue }
            throw IOFailure(operation: "write", path: path(), errno: n < 0 ? errno : EIO)
        }
    }

    /// Reads up to `count` bytes from offset 0; fewer when the file is shorter.
    func readPrefix(_ fd: Int32, count: Int, path: @autoclosure () -> String) throws(IOFailure) -> [UInt8] {
        if let e = injected(.read, path) { throw IOFailure(operation: "read", path: path(), errno: e) }
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var offset = 0
            while offset < count {
                let n = pread(fd, buffer.baseAddress! + offset, count - offset, off_t(offset))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if n == 0 { break }
                offset += n
            }
            initialized = offset
        }
        if failure != 0 { throw IOFailure(operation: "read", path: path(), errno: failure) }
        return bytes
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
    func readEntry(
        _ fd: Int32, size: Int, key: CacheKey, nowait: Bool, verifiedChecksum: UInt64?, path: @autoclosure () -> String
    ) throws(IOFailure) -> EntryRead {
        if let e = injected(.read, path) { throw IOFailure(operation: "read", path: path(), errno: e) }
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
            if read.errno != 0 { throw IOFailure(operation: "read", path: path(), errno: read.errno) }
            return read.count == size ? .bytes(bytes) : .incomplete
        }
        let outcome: (read: EntryRead?, errno: Int32) = withUnsafeTemporaryAllocation(byteCount: headerLength + 8, alignment: 8) { scratch in
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
            if read.errno != 0 { return (nil, read.errno) }
            if read.count < size { return (.incomplete, 0) }
            let header = UnsafeRawBufferPointer(start: scratchBase, count: headerLength)
            let checksum = UInt64(littleEndian: scratchBase.loadUnaligned(fromByteOffset: headerLength, as: UInt64.self))
            if let entry = CacheEntry.decode(
                header: header, payload: payload, checksum: checksum, expecting: key, verifiedChecksum: verifiedChecksum)
            {
                return (.entry(entry, checksum: checksum), 0)
            }
            var whole = [UInt8]()
            whole.reserveCapacity(size)
            whole.append(contentsOf: header)
            whole.append(contentsOf: payload)
            whole.append(contentsOf: UnsafeRawBufferPointer(start: scratchBase + headerLength, count: 8))
            return (.bytes(whole), 0)
        }
        guard let read = outcome.read else { throw IOFailure(operation: "read", path: path(), errno: outcome.errno) }
        return read
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

    /// `fsync` of a file or folder.
    func sync(_ fd: Int32, path: @autoclosure () -> String) throws(IOFailure) {
        if let e = injected(.sync, path) { throw IOFailure(operation: "fsync", path: path(), errno: e) }
        if fsync(fd) != 0 { throw IOFailure(operation: "fsync", path: path(), errno: errno) }
    }

    /// Sets an open file's modification time to now (best effort: the tier's recency refresh).
    func touch(_ fd: Int32) {
        if injected(.touch, { "descriptor \(fd)" }) != nil { return }
        _ = futimens(fd, nil)
    }

    /// Closes a descriptor the tier only read from or locked (nothing to report).
    func close(_ fd: Int32) {
        _ = closeDescriptor(fd)
    }

    /// Closes a file the tier wrote: an error here can mean the data did not reach the file.
    func closeAfterWriting(_ fd: Int32, path: @autoclosure () -> String) throws(IOFailure) {
        if let e = injected(.close, path) {
            _ = closeDescriptor(fd)
            throw IOFailure(operation: "close", path: path(), errno: e)
        }
        if closeDescriptor(fd) != 0 { throw IOFailure(operation: "close", path: path(), errno: errno) }
    }

    // MARK: - File systems

    /// `statvfs` of `path`; nil when it cannot be had.
    func fileSystemStatus(_ path: String) -> statvfs? {
        if injected(.fileSystemStatus, { path }) != nil { return nil }
        var info = statvfs()
        return statvfs(path, &info) == 0 ? info : nil
    }

    /// The type of the file system holding the open folder `fd` (`statfs`'s `f_type`), or -1.
    func fileSystemType(_ fd: Int32) -> Int64 {
        if injected(.fileSystemStatus, { "descriptor \(fd)" }) != nil { return -1 }
        return ctiercachedisk_filesystem_type(fd)
    }

    /// The process's soft limit on open descriptors (`RLIMIT_NOFILE`), read once for the
    /// process-wide ``KeptFileBudget`` before any tier exists (so no fault can be injected).
    static func openFileLimit() -> Int {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return 1024 }
        return Int(clamping: limit.rlim_cur)
    }

    // MARK: - Locks

    /// One non-blocking attempt at an exclusive `flock` on `fd`: false when another open file
    /// description (another process, or another descriptor of this one) holds it.
    func tryLock(_ fd: Int32, path: @autoclosure () -> String) throws(IOFailure) -> Bool {
        if let e = injected(.lockFile, path) {
            if e == EWOULDBLOCK { return false }
            throw IOFailure(operation: "flock", path: path(), errno: e)
        }
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
            switch errno {
            case EINTR: continue
            case EWOULDBLOCK: return false
            default: throw IOFailure(operation: "flock", path: path(), errno: errno)
            }
        }
    }

    /// Drops a lock taken with ``tryLock(_:path:)`` (closing the descriptor drops it too).
    func unlock(_ fd: Int32) {
        _ = flock(fd, LOCK_UN)
    }

    /// Sleeps the calling thread (a pool thread) for `nanoseconds`.
    func pause(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
    }
}
