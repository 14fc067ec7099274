#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The deadline of an operation that needs a lock another process may hold (a shard folder's, or
/// the root's `usage` file's): non-blocking attempts, with jittered pauses that grow between them,
/// until the deadline passes; then the operation is skipped and counted. A process that stops
/// while it holds a lock (SIGSTOP, a paused container, a debugger) can therefore hold up another
/// process's operations only that long, never a thread for good (docs/disk-tier.md, "Locks").
struct LockDeadline {
    /// Monotonic nanoseconds after which no attempt is made.
    let deadline: UInt64
    private var pause: UInt64 = 50_000
    private var random: UInt64

    /// The longest pause between two attempts.
    static let longestPause: UInt64 = 5_000_000

    /// A deadline `duration` from now; zero or less: one attempt.
    init(after duration: Duration) {
        let now = monotonicNanoseconds()
        let nanoseconds = max(0, duration.components.seconds) * 1_000_000_000 + max(0, duration.components.attoseconds) / 1_000_000_000
        deadline = now &+ UInt64(nanoseconds)
        random = now ^ 0x9E37_79B9_7F4A_7C15
    }

    /// One attempt, no waiting: for the clean-ups a read makes on the way (removing a corrupt or
    /// expired file), which a later read or a sweep can do instead.
    static var once: LockDeadline { LockDeadline(after: .zero) }

    /// Pauses before the next attempt (a random time between half and all of the current pause,
    /// which doubles each time up to ``longestPause``, never past the deadline); false, without
    /// pausing, once the deadline has passed.
    mutating func pauseBeforeNextAttempt(_ fileSystem: FileSystem) -> Bool {
        let now = monotonicNanoseconds()
        guard now < deadline else { return false }
        // SplitMix64: the jitter needs no more (and no system call).
        random &+= 0x9E37_79B9_7F4A_7C15
        var z = random
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let jittered = pause / 2 + z % (pause / 2 + 1)
        fileSystem.pause(nanoseconds: min(jittered, deadline - now))
        pause = min(pause * 2, Self.longestPause)
        return true
    }
}

extension FileSystem {
    /// Takes an exclusive `flock` on `fd` before `deadline` passes (``LockDeadline``).
    /// - Throws: ``IOFailure/lockTimeout(_:)`` when it is still held by another at the deadline;
    ///   the call's other errors.
    func lock(_ fd: Int32, until deadline: inout LockDeadline, path: @autoclosure () -> String) throws(IOFailure) {
        while true {
            if try tryLock(fd, path: path()) { return }
            guard deadline.pauseBeforeNextAttempt(self) else { throw IOFailure.lockTimeout(path()) }
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
