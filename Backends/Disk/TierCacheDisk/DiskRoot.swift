#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a ``DiskTier`` did not use its root.
///
/// An opaque struct: compare ``reason`` with the static members of ``Reason``. A root refused
/// for a reason that says someone else could have prepared it (``Reason/ownedByAnotherUser``,
/// ``Reason/writableByOthers``, ``Reason/symbolicLink``, ``Reason/notADirectory``) stays refused
/// for the tier's life; ``Reason/unusable`` (the folder could not be created or opened) is tried
/// again by the next operation.
public struct DiskRootError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What the check found.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The root belongs to another user: whoever that is may have planted entries, links or
        /// FIFOs in it, and can change it at any time.
        public static let ownedByAnotherUser = Reason("ownedByAnotherUser")
        /// The root's mode lets its group or other users write into it.
        public static let writableByOthers = Reason("writableByOthers")
        /// The root's last component is a symbolic link (never followed).
        public static let symbolicLink = Reason("symbolicLink")
        /// Something that is not a folder has the root's name.
        public static let notADirectory = Reason("notADirectory")
        /// The root (or a folder above it) could not be created or opened: ``DiskRootError/errno``
        /// says why. Not a refusal: the next operation tries again.
        public static let unusable = Reason("unusable")

        public var description: String { name }
    }

    /// What the check found.
    public let reason: Reason
    /// The root's path, as configured.
    public let root: String
    /// The C library's error code, for ``Reason/unusable``; 0 otherwise.
    public let errno: Int32
    /// A human-readable explanation, safe to log: what was found and what to do.
    public let message: String

    init(_ reason: Reason, root: String, errno: Int32 = 0, _ message: String) {
        self.reason = reason
        self.root = root
        self.errno = errno
        self.message = message
    }

    /// Whether the refusal stands for the tier's life (everything but ``Reason/unusable``).
    var isRefusal: Bool { reason != .unusable }

    public var description: String { "DiskRootError(\(reason)): \(message)" }
}

/// A root that passed the check, held open: the root folder and its `ns` folder, which every
/// path below the root is resolved from (`openat`, `mkdirat`, `renameat`, `unlinkat`), so that
/// what the check verified is what the tier uses even if names above it change afterwards. The
/// descriptors close when the last operation using the handle lets go of it.
final class RootHandle: Sendable {
    /// The verified root folder.
    let directory: Int32
    /// Its `ns` folder, holding one folder per namespace.
    let namespaces: Int32
    /// Whether the root is on a file system where kept entry files can be trusted (``KeptFiles``).
    let isLocalFileSystem: Bool
    /// The root's path, for messages.
    let path: String
    private let fileSystem: FileSystem

    private init(directory: Int32, namespaces: Int32, isLocalFileSystem: Bool, path: String, fileSystem: FileSystem) {
        self.directory = directory
        self.namespaces = namespaces
        self.isLocalFileSystem = isLocalFileSystem
        self.path = path
        self.fileSystem = fileSystem
    }

    deinit {
        fileSystem.close(namespaces)
        fileSystem.close(directory)
    }

    /// Whether the root's `ns` folder is still linked: false once the root was removed (the
    /// tier then checks the path again, and may find a new root there).
    var isLinked: Bool {
        guard let st = try? fileSystem.status(namespaces, path: path + "/ns") else { return false }
        return st.st_nlink > 0
    }

    /// Opens `path`, creating it (mode 0700, with missing parents) if it does not exist, and
    /// checks it: a folder, not a symbolic link, owned by this process's effective user, and not
    /// writable by its group or others. Then opens (or creates) its `ns` folder the same way.
    /// - Throws: ``DiskRootError`` naming what was found.
    static func open(_ path: String, fileSystem: FileSystem) throws(DiskRootError) -> RootHandle {
        func unusable(_ failure: IOFailure) -> DiskRootError {
            DiskRootError(.unusable, root: path, errno: failure.errno, "the disk tier's root \(path) cannot be used: \(failure)")
        }
        let name: String
        let parentPath: String
        if let slash = path.lastIndex(of: "/") {
            name = String(path[path.index(after: slash)...])
            parentPath = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            name = path
            parentPath = "."
        }
        guard !name.isEmpty, name != ".", name != ".." else {
            throw DiskRootError(.notADirectory, root: path, "the disk tier's root must name a folder of its own, not \"\(path)\"")
        }
        // The folder above the root is trusted as the configuration names it (symbolic links in
        // it are followed); the root itself is opened without following one, and checked.
        let parent: Int32
        do throws(IOFailure) {
            if let opened = try fileSystem.openDirectory(atPath: parentPath) {
                parent = opened
            } else {
                try fileSystem.makeDirectories(atPath: parentPath)
                guard let opened = try fileSystem.openDirectory(atPath: parentPath) else {
                    throw IOFailure(operation: "open", path: parentPath, errno: ENOENT)
                }
                parent = opened
            }
        } catch {
            throw unusable(error)
        }
        defer { fileSystem.close(parent) }
        let root = try openChecked(name, in: parent, path: path, fileSystem: fileSystem, isRoot: true)
        let namespaces: Int32
        do {
            namespaces = try openChecked("ns", in: root, path: path + "/ns", fileSystem: fileSystem, isRoot: false)
        } catch {
            fileSystem.close(root)
            throw error
        }
        let local = KeptFiles.isLocalFileSystem(type: fileSystem.fileSystemType(namespaces))
        return RootHandle(directory: root, namespaces: namespaces, isLocalFileSystem: local, path: path, fileSystem: fileSystem)
    }

    /// Opens the folder `name` in `parent`, creating it (0700) if missing, and checks it. Inside a
    /// verified root (`isRoot` false), a symbolic link or a file that has the name is removed and
    /// the folder made anew: only this user can have put it there.
    private static func openChecked(
        _ name: String, in parent: Int32, path: String, fileSystem: FileSystem, isRoot: Bool
    ) throws(DiskRootError) -> Int32 {
        var repaired = false
        for _ in 0..<4 {
            let fd: Int32
            do {
                if let opened = try fileSystem.openDirectory(name, in: parent, path: path) {
                    fd = opened
                } else {
                    try fileSystem.makeDirectory(name, in: parent, path: path)
                    continue  // open what is there now (ours, or another process's, checked alike)
                }
            } catch where error.errno == ELOOP || error.errno == ENOTDIR {
                if isRoot {
                    // O_NOFOLLOW | O_DIRECTORY on a link gives ENOTDIR or ELOOP: ask what it is.
                    let found = try? fileSystem.status(name, in: parent, path: path)
                    throw found.map({ ($0.st_mode & S_IFMT) == S_IFLNK }) == true
                        ? DiskRootError(.symbolicLink, root: path, "the disk tier's root \(path) is a symbolic link; a root is never followed through one")
                        : DiskRootError(.notADirectory, root: path, "the disk tier's root \(path) exists and is not a folder")
                }
                guard !repaired, (try? fileSystem.remove(name, in: parent, path: path)) == true else {
                    throw DiskRootError(.notADirectory, root: path, "\(path) is not a folder and could not be replaced by one")
                }
                repaired = true
                continue
            } catch {
                throw DiskRootError(.unusable, root: path, errno: error.errno, "the disk tier's root \(path) cannot be used: \(error)")
            }
            let st: stat
            do {
                st = try fileSystem.status(fd, path: path)
            } catch {
                fileSystem.close(fd)
                throw DiskRootError(.unusable, root: path, errno: error.errno, "the disk tier's root \(path) cannot be used: \(error)")
            }
            let user = fileSystem.effectiveUserID()
            if st.st_uid != user {
                fileSystem.close(fd)
                throw DiskRootError(
                    .ownedByAnotherUser, root: path,
                    "\(path) belongs to user \(st.st_uid), not to this process's user \(user): whoever made it controls what is in it. "
                        + "Remove it, or configure a root of your own (the default is per user: /tmp/tiercache-<uid>)")
            }
            if st.st_mode & 0o022 != 0 {
                fileSystem.close(fd)
                throw DiskRootError(
                    .writableByOthers, root: path,
                    "\(path) has mode \(String(st.st_mode & 0o7777, radix: 8)): its group or other users can write into it. "
                        + "Make it 0700 (chmod 700) or remove it; the tier creates its folders 0700")
            }
            return fd
        }
        // Made and removed again by someone else, round after round.
        throw DiskRootError(.unusable, root: path, errno: ENOENT, "the disk tier's root \(path) keeps vanishing")
    }
}
