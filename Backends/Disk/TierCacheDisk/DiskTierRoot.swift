import Logging
import Synchronization
import TierCache

/// Where a tier stands with its root.
enum RootState {
    /// Not checked yet (nothing touched on disk).
    case unchecked
    /// Checked, and held open.
    case ready(RootHandle)
    /// Refused for good (``DiskRootError/isRefusal``).
    case refused(DiskRootError)
}

extension DiskTier {
    /// Checks the root now, creating it (0700) if it does not exist, rather than on the first
    /// operation; an application that wants to know at start-up whether its disk tier will be
    /// used calls this. Operations check the root themselves, so calling it is never required.
    /// - Throws: ``DiskRootError`` naming what is wrong with the root: a refusal stands for the
    ///   tier's life (every read a miss, every write skipped, counted); ``DiskRootError/Reason/unusable``
    ///   (the folder could not be created or opened) is tried again by the next operation.
    ///   `CancellationError` when cancelled before the check started.
    public func checkRoot() async throws {
        let outcome = try await pool.run { self.verifiedRoot() }
        if case .failure(let error) = outcome { throw error }
    }

    /// Why the tier refused its root, once it has (nil before the first operation, and while the
    /// root is in use). A refused root stays refused for this instance's life; a new instance
    /// (a restart) checks again.
    public var rootRefusal: DiskRootError? {
        if case .refused(let error) = rootState.withLock({ $0 }) { return error }
        return nil
    }

    /// The verified root if it was checked already, without touching the disk (the non-blocking
    /// read path); nil otherwise.
    var checkedRoot: RootHandle? {
        if case .ready(let handle) = rootState.withLock({ $0 }) { return handle }
        return nil
    }

    /// The verified root, checking it first when it was not yet (may create folders: on the
    /// pool only).
    func verifiedRoot() -> Result<RootHandle, DiskRootError> {
        switch rootState.withLock({ $0 }) {
        case .ready(let handle): return .success(handle)
        case .refused(let error): return .failure(error)
        case .unchecked: return recheckRoot(replacing: nil)
        }
    }

    /// How many replaced roots' handles are kept open for readers on the calling thread.
    static let replacedRootsKeptOpen = 16

    /// Checks the root's path again because `stale`, the handle in use, has no link left (the
    /// root was removed): the next one made there is checked like the first (on the pool only).
    func recheckRoot(replacing stale: RootHandle?) -> Result<RootHandle, DiskRootError> {
        rootCheck.withLock {
            // Another thread may have checked it meanwhile.
            switch rootState.withLock({ $0 }) {
            case .ready(let handle) where handle !== stale: return .success(handle)
            case .refused(let error): return .failure(error)
            case .ready, .unchecked: break
            }
            if let stale {
                // Readers on the calling thread may still use its `ns` folder: keep it open.
                replacedRoots.append(stale)
                namespacesForFastReads.store(-1, ordering: .releasing)
            }
            do throws(DiskRootError) {
                let handle = try RootHandle.open(root, fileSystem: fileSystem)
                rootState.withLock { $0 = .ready(handle) }
                keepsFiles.store(handle.isLocalFileSystem, ordering: .relaxed)
                // A root replaced again and again (removed by someone, each time) would pile up
                // open handles: past a few, reads take the locked path and keep none.
                if replacedRoots.count <= Self.replacedRootsKeptOpen {
                    namespacesForFastReads.store(handle.namespaces, ordering: .releasing)
                }
                if configuration.keptOpenFiles > 0, !handle.isLocalFileSystem {
                    logger.debug("disk tier: root is not on a local file system; no entry file is kept open", metadata: [
                        "tier": "\(name)", "root": "\(root)",
                    ])
                }
                return .success(handle)
            } catch {
                if error.isRefusal {
                    rootState.withLock { $0 = .refused(error) }
                    _ = keptFiles.dropAll()
                    logger.error("disk tier: root refused; every read is a miss and every write is skipped", metadata: [
                        "tier": "\(name)", "root": "\(root)", "reason": "\(error.reason)", "detail": "\(error.message)",
                    ])
                } else if stale != nil {
                    rootState.withLock { $0 = .unchecked }
                }
                return .failure(error)
            }
        }
    }
}
