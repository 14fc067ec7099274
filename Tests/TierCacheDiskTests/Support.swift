#if canImport(Glibc)
import Glibc
#endif
import TierCache
import TierCacheDisk
import TierCacheTesting
import Testing

/// A fresh folder under /tmp, removed by `remove()`.
struct TemporaryRoot {
    let path: String

    init(_ label: String = "t") {
        var template = Array("/tmp/tiercache-disk-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(errno)")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The tier's root inside the folder (not created yet, so the tier creates it).
    var root: String { path + "/root" }

    func remove() { removeTree(path) }
}

/// Every regular file under `path` with its size and mode, and every folder with its mode.
func walk(_ path: String) -> (files: [(path: String, size: Int, mode: mode_t)], folders: [(path: String, mode: mode_t)]) {
    var files: [(String, Int, mode_t)] = []
    var folders: [(String, mode_t)] = []
    func visit(_ p: String) {
        var st = stat()
        guard lstat(p, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            folders.append((p, st.st_mode & 0o7777))
            for name in listNames(p) { visit(p + "/" + name) }
        } else {
            files.append((p, Int(st.st_size), st.st_mode & 0o7777))
        }
    }
    visit(path)
    return (files, folders)
}

/// The entry files of a root (everything but the `usage` file and temporary files).
func entryFiles(_ root: String) -> [(path: String, size: Int, mode: mode_t)] {
    walk(root).files.filter { file in
        let name = file.path.split(separator: "/").last.map(String.init) ?? ""
        return file.path != root + "/usage" && !name.hasPrefix(".tmp.")
    }
}

func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
        if n <= 0 { break }
        out += buffer[0..<n]
    }
    return out
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// A clock the test moves by hand.
final class TestClock: CacheClock, @unchecked Sendable {
    private let lock = Lock()
    private var current: WallTime

    init(_ start: WallTime = WallTime(millisecondsSince1970: 1_700_000_000_000)) { current = start }

    func now() -> WallTime { lock.withLock { current } }
    func advance(_ duration: Duration) { lock.withLock { current = current.advanced(by: duration) } }
}

/// An entry whose payload is `size` bytes derived from `seed`.
func makeEntry(_ key: CacheKey, size: Int, seed: UInt8 = 1, freshFor: Duration = .seconds(3600), now: WallTime = SystemCacheClock().now()) -> CacheEntry {
    let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    return CacheEntry(
        key: key, serializerID: .binary, codecID: .identity, createdAt: now,
        freshUntil: now.advanced(by: freshFor), staleUntil: now.advanced(by: freshFor),
        uncompressedLength: UInt64(size), payload: payload)
}

func key(_ name: String, namespace: String = "test") throws -> CacheKey {
    try CacheKey(namespace: namespace, name: name)
}

// MARK: - Child processes

/// The helper executable built next to the test bundle.
func helperPath() -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    var directory = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    while !directory.isEmpty {
        directory = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
        let candidate = directory + "/tiercache-disk-helper"
        if access(candidate, X_OK) == 0 { return candidate }
        if directory.hasSuffix(".build") { break }
    }
    return nil
}

/// A child process whose standard output is a pipe.
struct Child {
    let pid: pid_t
    let output: Int32

    static func spawn(_ path: String, _ arguments: [String]) throws -> Child {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw TierCacheError(.storage, "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            throw TierCacheError(.storage, "posix_spawn failed: \(rc)")
        }
        return Child(pid: pid, output: pipeFDs[0])
    }

    /// Reads one line of the child's output (blocking).
    func readLine() -> String {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(output, &byte, 1) == 1, byte != UInt8(ascii: "\n") { line.append(byte) }
        return String(decoding: line, as: UTF8.self)
    }

    /// Reads the rest of the output and waits for the exit status.
    func finish() -> (status: Int32, output: String) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, 4096) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        close(output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status, String(decoding: out, as: UTF8.self))
    }

    func kill(_ signal: Int32) {
        _ = Glibc.kill(pid, signal)
    }
}
