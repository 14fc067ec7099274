#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What identifies one version of a file's content without reading it: an entry file is never
/// written in place (writes rename a new inode over it), and any write to an inode, or a change
/// of its times, moves its change time (`ctime`), which no caller can set.
struct FileVersion: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modified: timespec
    var changed: timespec

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        #if canImport(Darwin)
        modified = st.st_mtimespec
        changed = st.st_ctimespec
        #else
        modified = st.st_mtim
        changed = st.st_ctim
        #endif
    }

    /// The modification time in milliseconds since 1970.
    var modifiedMilliseconds: Int64 { Int64(modified.tv_sec) * 1000 + Int64(modified.tv_nsec) / 1_000_000 }

    /// The change time in milliseconds since 1970.
    var changedMilliseconds: Int64 { Int64(changed.tv_sec) * 1000 + Int64(changed.tv_nsec) / 1_000_000 }

    /// Whether a write to the file from now on is sure to move its change time. Kernels without
    /// fine-grained timestamps stamp files from a clock that ticks every few milliseconds, so a
    /// write in the same tick as the last change would leave the change time as it is; a version
    /// last changed more than this long ago is past that.
    func isSettled(now: Int64) -> Bool { now - changedMilliseconds > 20 }

    static func == (a: FileVersion, b: FileVersion) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size
            && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
            && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
    }
}

extension stat {
    /// Modification time in milliseconds since 1970.
    var modifiedMilliseconds: Int64 { FileVersion(self).modifiedMilliseconds }
}

/// Real time in milliseconds, for recency (file modification times are real time too).
func realTimeMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
