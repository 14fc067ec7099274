#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache

// Free functions, so that the names resolve to the C library inside types that have their own
// `read` or `write`.
func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }

// MARK: - Exit codes and errors

/// The exit codes of `tiercache` (docs/cli.md lists them; scripts depend on them, so they never
/// change meaning).
public enum ExitStatus {
    /// Success.
    public static let ok: Int32 = 0
    /// A failure that fits no other code.
    public static let failure: Int32 = 1
    /// The object, entry or file named does not exist.
    public static let notFound: Int32 = 3
    /// The bytes are not a valid envelope (wrong magic, version, checksum, truncated, a payload that
    /// does not decompress, or a dictionary that is not loaded).
    public static let invalidEnvelope: Int32 = 4
    /// The store failed: S3 or the network (after retries), or the disk folder.
    public static let storage: Int32 = 5
    /// No usable credentials, or the store refused them (access denied, bad signature).
    public static let credentials: Int32 = 6
    /// A local file could not be read or written.
    public static let localIO: Int32 = 7
    /// Bad arguments (argument parser's own code, EX_USAGE).
    public static let usage: Int32 = 64
}

/// An error the CLI reports with a one-line message and an exit code.
public struct CLIError: Error, CustomStringConvertible, Sendable {
    /// The exit code (one of ``ExitStatus``).
    public var exitCode: Int32
    /// A short machine-readable kind (`notFound`, `invalidEnvelope`, ...), printed with `--json`.
    public var kind: String
    /// The message for a person.
    public var message: String

    init(_ exitCode: Int32, _ kind: String, _ message: String) {
        self.exitCode = exitCode
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func notFound(_ message: String) -> CLIError { CLIError(ExitStatus.notFound, "notFound", message) }
    static func invalidEnvelope(_ message: String) -> CLIError {
        CLIError(ExitStatus.invalidEnvelope, "invalidEnvelope", message)
    }
    static func storage(_ message: String) -> CLIError { CLIError(ExitStatus.storage, "storage", message) }
    static func credentials(_ message: String) -> CLIError { CLIError(ExitStatus.credentials, "credentials", message) }
    static func localIO(_ message: String) -> CLIError { CLIError(ExitStatus.localIO, "localIO", message) }
    static func usage(_ message: String) -> CLIError { CLIError(ExitStatus.usage, "usage", message) }
    static func failure(_ message: String) -> CLIError { CLIError(ExitStatus.failure, "failure", message) }
}

// MARK: - Console

/// Where a command writes: stdout, stderr and the progress line. Commands read
/// ``Console/current``; tests bind a capturing console with `Console.$current.withValue`.
public final class Console: Sendable {
    /// The console commands write to in this task.
    @TaskLocal public static var current = Console.standard

    /// The process's stdout and stderr; progress only when stderr is a terminal.
    public static let standard = Console(
        out: { bytes in Console.writeAll(STDOUT_FILENO, bytes) },
        err: { text in Console.writeAll(STDERR_FILENO, Array(text.utf8)) },
        isTerminal: isatty(STDERR_FILENO) == 1,
        stdin: { Console.readAll(STDIN_FILENO) },
        environment: ProcessInfo.processInfo.environment
    )

    let outSink: @Sendable ([UInt8]) -> Void
    let errSink: @Sendable (String) -> Void
    let stdinSource: @Sendable () -> [UInt8]
    /// Whether progress lines are drawn (stderr is a terminal).
    public let isTerminal: Bool
    /// The environment variables commands read (`AWS_*`).
    public let environment: [String: String]

    /// Creates a console from its sinks.
    public init(out: @escaping @Sendable ([UInt8]) -> Void, err: @escaping @Sendable (String) -> Void,
                isTerminal: Bool, stdin: @escaping @Sendable () -> [UInt8] = { [] },
                environment: [String: String] = [:]) {
        self.outSink = out
        self.errSink = err
        self.isTerminal = isTerminal
        self.stdinSource = stdin
        self.environment = environment
    }

    func print(_ text: String) { outSink(Array((text + "\n").utf8)) }
    func write(_ bytes: [UInt8]) { outSink(bytes) }
    func error(_ text: String) { errSink(text + "\n") }
    func progress(_ text: String) { if isTerminal { errSink("\r\u{1B}[2K" + text) } }
    func endProgress() { if isTerminal { errSink("\r\u{1B}[2K") } }
    func readStdin() -> [UInt8] { stdinSource() }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }
}

/// A progress counter drawn on stderr when it is a terminal, at most ten times a second.
final class ProgressLine: Sendable {
    private let console: Console
    private let label: String
    private let total: Int?
    private let state = LockedValueBox<(done: Int, lastDraw: UInt64)>((0, 0))

    init(_ label: String, total: Int?, console: Console = .current) {
        self.console = console
        self.label = label
        self.total = total
    }

    func advance(by n: Int = 1) {
        guard console.isTerminal else { return }
        let now = monotonicMilliseconds()
        let draw: Int? = state.withLock { s in
            s.done += n
            let last = s.done == total
            guard last || now - s.lastDraw >= 100 else { return nil }
            s.lastDraw = now
            return s.done
        }
        if let draw {
            console.progress(total.map { "\(label) \(draw)/\($0)" } ?? "\(label) \(draw)")
        }
    }

    func finish() { console.endProgress() }
}

func monotonicMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

// MARK: - JSON

func renderJSON(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

struct JSONErrorReport: Encodable {
    struct Body: Encodable {
        var kind: String
        var message: String
        var exitCode: Int32
    }
    var error: Body
}

// MARK: - Durations

/// Parses a duration as `90s`, `15m`, `24h`, `7d`, `500ms`, `1h30m`, or a bare number of seconds.
func parseDuration(_ text: String) -> Duration? {
    let t = text.filter { $0 != " " }.lowercased()
    guard !t.isEmpty else { return nil }
    if let seconds = Int64(t) { return seconds >= 0 ? .seconds(seconds) : nil }
    var total: Int64 = 0
    var number = ""
    var unit = ""
    func flush() -> Bool {
        guard let n = Int64(number) else { return false }
        let ms: Int64
        switch unit {
        case "ms": ms = 1
        case "s": ms = 1000
        case "m": ms = 60_000
        case "h": ms = 3_600_000
        case "d": ms = 86_400_000
        case "w": ms = 604_800_000
        default: return false
        }
        let (product, overflow) = n.multipliedReportingOverflow(by: ms)
        guard !overflow else { return false }
        total = total.addingReportingOverflow(product).overflow ? Int64.max : total + product
        number = ""
        unit = ""
        return true
    }
    for ch in t {
        if ch.isNumber {
            if !unit.isEmpty { guard flush() else { return nil } }
            number.append(ch)
        } else if ch.isLetter {
            guard !number.isEmpty else { return nil }
            unit.append(ch)
        } else {
            return nil
        }
    }
    guard flush() else { return nil }
    return .milliseconds(total)
}

/// `1d 2h`, `15m 0s`, `350ms`: the two largest units of a span.
func formatSpan(milliseconds: Int64) -> String {
    let ms = milliseconds.magnitude
    if ms < 1000 { return "\(ms)ms" }
    let s = ms / 1000
    let units: [(UInt64, String)] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
    var parts: [String] = []
    var rest = s
    for (size, name) in units where parts.count < 2 {
        let n = rest / size
        if n > 0 || !parts.isEmpty {
            parts.append("\(n)\(name)")
            rest -= n * size
        }
    }
    return parts.joined(separator: " ")
}

/// ISO 8601 in UTC with milliseconds, e.g. `2026-11-27T05:40:00.123Z`.
func formatISO(_ time: WallTime) -> String {
    let ms = time.millisecondsSince1970
    var seconds = time_t(ms >= 0 ? ms / 1000 : (ms - 999) / 1000)
    let millis = Int(ms - Int64(seconds) * 1000)
    var parts = tm()
    guard gmtime_r(&seconds, &parts) != nil else { return "\(ms)ms" }
    func pad(_ v: Int32, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
}

/// `2026-11-27T05:40:00.000Z (in 14m 59s)` or `(... ago)`.
func formatHuman(_ time: WallTime, now: WallTime) -> String {
    let delta = time.millisecondsSince1970 - now.millisecondsSince1970
    let relative = delta >= 0 ? "in \(formatSpan(milliseconds: delta))" : "\(formatSpan(milliseconds: delta)) ago"
    return "\(formatISO(time)) (\(relative))"
}

func formatBytes(_ n: UInt64) -> String {
    if n < 1024 { return "\(n) B" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var value = Double(n) / 1024
    var i = 0
    while value >= 1024, i < units.count - 1 {
        value /= 1024
        i += 1
    }
    return fixed(value, digits: 1) + " " + units[i]
}

func formatRatio(_ value: Double) -> String {
    value.isFinite ? fixed(value, digits: 2) : "-"
}

/// `value` rounded to `digits` decimals (FoundationEssentials has no `String(format:)`).
func fixed(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (value.magnitude * scale).rounded()
    let whole = Int64(scaled / scale)
    let frac = Int64(scaled) - whole * Int64(scale)
    var text = String(whole)
    if digits > 0 {
        let f = String(frac)
        text += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return (value < 0 && scaled != 0 ? "-" : "") + text
}

// MARK: - Local files

enum LocalFile {
    /// Reads the whole file at `path`.
    /// - Parameter regularFileOnly: refuse anything but a regular file, without following a
    ///   symbolic link or waiting on a FIFO (a disk tier's entry files).
    static func read(_ path: String, regularFileOnly: Bool = false) throws(CLIError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (regularFileOnly ? O_NOFOLLOW | O_NONBLOCK : 0))
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw .notFound("no such file: \(path)") }
            if code == ELOOP, regularFileOnly { throw .localIO("\(path) is a symbolic link, not an entry file") }
            throw .localIO("cannot open \(path): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw .localIO("\(path) is a folder, not a file")
        }
        if regularFileOnly, (st.st_mode & S_IFMT) != S_IFREG {
            throw .localIO("\(path) is not a regular file")
        }
        var out: [UInt8] = []
        if st.st_size > 0 { out.reserveCapacity(Int(st.st_size)) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .localIO("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// Writes `bytes` to `path` through a temporary file renamed into place.
    static func write(_ bytes: [UInt8], to path: String) throws(CLIError) {
        let temporary = path + ".tiercache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .localIO("cannot create \(path): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 {
                let message = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw .localIO("cannot write \(path): \(message)")
            }
            offset += n
        }
        guard close(fd) == 0, rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw .localIO("cannot write \(path): \(message)")
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Regular files under `path` (itself if a file), recursively, as (absolute path, path relative
    /// to `path`), sorted; hidden names (starting with `.`) are skipped.
    static func files(under path: String) throws(CLIError) -> [(path: String, relative: String)] {
        guard isDirectory(path) else {
            var st = stat()
            guard stat(path, &st) == 0 else { throw .notFound("no such file or folder: \(path)") }
            let base = path.split(separator: "/").last.map(String.init) ?? path
            return [(path, base)]
        }
        var result: [(String, String)] = []
        func walk(_ dir: String, _ relative: String) {
            guard let handle = opendir(dir) else { return }
            defer { closedir(handle) }
            while let entry = readdir(handle) {
                let name = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                if name.hasPrefix(".") { continue }
                let full = dir + "/" + name
                let rel = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard stat(full, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    walk(full, rel)
                } else if (st.st_mode & S_IFMT) == S_IFREG {
                    result.append((full, rel))
                }
            }
        }
        walk(path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path, "")
        return result.sorted { $0.1 < $1.1 }
    }
}
