import Synchronization
import TierCache

/// How many entry files every ``DiskTier`` of a process may keep open together: kept files must
/// not take the descriptors the rest of the process needs, however many tiers it makes.
package final class KeptFileBudget: Sendable {
    /// The most files kept at once across the tiers sharing this budget.
    let limit: Int
    private let used = Atomic<Int>(0)

    package init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// The process's budget: an eighth of its soft open-file limit (128 of Lambda's 1,024).
    package static let process = KeptFileBudget(limit: FileSystem.openFileLimit() / 8)

    /// Takes one file's share; false when the budget is used up.
    func take() -> Bool {
        if used.add(1, ordering: .relaxed).newValue <= limit { return true }
        used.subtract(1, ordering: .relaxed)
        return false
    }

    /// Gives back `count` files' shares.
    func giveBack(_ count: Int) {
        if count > 0 { used.subtract(count, ordering: .relaxed) }
    }

    /// Files kept now under this budget (tests).
    package var inUseForTests: Int { used.load(ordering: .relaxed) }
}

/// Entry files kept open between reads, a bounded number per process: a read of a kept file is
/// an `fstat` and a `preadv` on a descriptor the tier holds, where a read by name also opens and
/// closes the file (``DiskTier/Configuration/keptOpenFiles``).
///
/// A kept descriptor still reads the file its name holds as long as that file has a link left:
/// entry files only ever have one name (a write renames a temporary file onto it), and whatever
/// changes which file a name holds unlinks the old one, in any process: a write's rename over it,
/// a removal, an eviction, a sweep, a removed root. So a read whose `fstat` finds `st_nlink > 0`
/// reads the file the name held at that moment, and one that finds 0 drops the descriptor and
/// opens the name again. This holds on local file systems only (a network file system does not
/// see another machine's unlink): ``isLocalFileSystem(type:)`` decides whether a root keeps files.
///
/// Slots in stripes chosen by fingerprint, each under its own lock. While a stripe has a free
/// slot (and the process's ``KeptFileBudget`` a share left), every file read is kept. Once it is
/// full, a file is let in only on its second read among the stripe's recent refusals (a
/// *doorkeeper* of twice as many fingerprints as slots), and takes the place of a file not read
/// since the replacement hand last passed it (CLOCK). So a scan over more keys than there are
/// slots does not churn the kept files, which would cost it an extra `close` of a cold descriptor
/// per read, and the entries read again and again stay kept.
///
/// A descriptor closes when the last reference to its ``File`` goes: a read in progress keeps the
/// file it reads open even if another thread drops it meanwhile.
final class KeptFiles: @unchecked Sendable {
    /// One open entry file; closed when the last reference goes.
    final class File: Sendable {
        let descriptor: Int32
        private let fileSystem: FileSystem

        init(_ descriptor: Int32, _ fileSystem: FileSystem) {
            self.descriptor = descriptor
            self.fileSystem = fileSystem
        }

        deinit { fileSystem.close(descriptor) }
    }

    private final class Stripe: @unchecked Sendable {
        let lock = Lock()
        // Guarded by `lock`: slot i holds files[i] for fingerprints[i] (nil: a free slot), and
        // read[i] says whether it was read since the hand last passed it.
        var fingerprints: [Fingerprint]
        var files: [File?]
        var read: [Bool]
        var hand = 0
        // The fingerprints refused last, oldest overwritten first.
        var refused: [Fingerprint]
        var nextRefused = 0
        // Each stripe's object on lines of its own (its reference count is written on every
        // use): 16 bytes of header, 56 of fields and these 56 make 128.
        private let padding: (Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0)

        init(slots: Int) {
            fingerprints = Array(repeating: Fingerprint(high: 0, low: 0), count: slots)
            files = Array(repeating: nil, count: slots)
            read = Array(repeating: false, count: slots)
            refused = Array(repeating: Fingerprint(high: 0, low: 0), count: 2 * slots)
        }

        /// The slot holding `fingerprint`'s file, if any (a few slots: a linear scan).
        func slot(_ fingerprint: Fingerprint) -> Int? {
            for slot in files.indices where files[slot] != nil && fingerprints[slot] == fingerprint {
                return slot
            }
            return nil
        }

        /// The slot for a file let in over the others (CLOCK): the first one not read since the
        /// hand last passed it; the hand clears the marks it passes. At least one slot is in use.
        func victim() -> Int {
            while files[hand] == nil || read[hand] {
                read[hand] = false
                hand = (hand + 1) % files.count
            }
            let slot = hand
            hand = (hand + 1) % files.count
            return slot
        }

        /// Whether `fingerprint` was refused lately (and forgets it if so); if not, remembers it.
        func wasRefused(_ fingerprint: Fingerprint) -> Bool {
            if let index = refused.firstIndex(of: fingerprint) {
                refused[index] = Fingerprint(high: 0, low: 0)
                return true
            }
            refused[nextRefused] = fingerprint
            nextRefused = (nextRefused + 1) % refused.count
            return false
        }
    }

    /// The most files kept at once (fewer while other tiers use the shared budget).
    let capacity: Int
    private let stripes: [Stripe]
    private let budget: KeptFileBudget

    /// Keeps at most `capacity` files open (none when it is 0), within `budget`.
    init(capacity: Int, budget: KeptFileBudget) {
        let capacity = min(capacity, budget.limit)
        let stripeCount = max(1, min(16, capacity))
        let slots = max(0, capacity) / stripeCount
        self.capacity = slots * stripeCount
        self.budget = budget
        stripes = (0..<stripeCount).map { _ in Stripe(slots: slots) }
    }

    deinit {
        budget.giveBack(count)
    }

    @inline(__always)
    private func stripe(_ fingerprint: Fingerprint) -> Stripe {
        // Other bits than the recency index's stripes use, so that the two spread independently.
        stripes[Int(truncatingIfNeeded: (fingerprint.low >> 8) % UInt64(stripes.count))]
    }

    /// The kept file for `fingerprint`, if any (marked read, for the replacement hand).
    func file(for fingerprint: Fingerprint) -> File? {
        guard capacity > 0 else { return nil }
        let stripe = stripe(fingerprint)
        return stripe.lock.withLock {
            guard let slot = stripe.slot(fingerprint) else { return nil }
            if !stripe.read[slot] { stripe.read[slot] = true }
            return stripe.files[slot]
        }
    }

    /// Offers `file`, just read by name, as `fingerprint`'s: it replaces the file kept for it
    /// before, or takes a free slot if the budget allows; otherwise it is let in on its second
    /// offer among the recent refusals, over a file not read lately. Returns whether it is kept.
    @discardableResult
    func keep(_ file: File, for fingerprint: Fingerprint) -> Bool {
        guard capacity > 0 else { return false }
        let stripe = stripe(fingerprint)
        // Released after the lock: the last reference closes its descriptor.
        let (kept, replaced): (Bool, File?) = stripe.lock.withLock {
            let slot: Int
            if let existing = stripe.slot(fingerprint) {
                slot = existing
            } else if let free = stripe.files.firstIndex(where: { $0 == nil }), budget.take() {
                slot = free
            } else if stripe.files.contains(where: { $0 != nil }), stripe.wasRefused(fingerprint) {
                slot = stripe.victim()
            } else {
                return (false, nil)  // refused for now, or the budget is other tiers'
            }
            let old = stripe.files[slot]
            stripe.fingerprints[slot] = fingerprint
            stripe.files[slot] = file
            stripe.read[slot] = false
            return (true, old)
        }
        _ = replaced
        return kept
    }

    /// Stops keeping `fingerprint`'s file; only if it is `file` when one is given (another read
    /// may have kept a newer one meanwhile). Returns the file dropped, for the caller to release
    /// where closing it may take a while.
    @discardableResult
    func drop(_ fingerprint: Fingerprint, ifItIs file: File? = nil) -> File? {
        guard capacity > 0 else { return nil }
        let stripe = stripe(fingerprint)
        return stripe.lock.withLock {
            guard let slot = stripe.slot(fingerprint), file == nil || stripe.files[slot] === file else { return nil }
            let old = stripe.files[slot]
            stripe.files[slot] = nil
            budget.giveBack(1)
            return old
        }
    }

    /// Stops keeping every file; returns how many there were. Each closes once no read is using
    /// it any more.
    func dropAll() -> Int {
        var dropped: [File] = []
        for stripe in stripes {
            stripe.lock.withLock {
                for slot in stripe.files.indices {
                    if let file = stripe.files[slot] { dropped.append(file) }
                    stripe.files[slot] = nil
                }
            }
        }
        budget.giveBack(dropped.count)
        return dropped.count  // `dropped` goes here, after the locks
    }

    /// How many files are kept now.
    var count: Int {
        stripes.reduce(0) { total, stripe in total + stripe.lock.withLock { stripe.files.count { $0 != nil } } }
    }

    /// Whether a file system of `type` (`statfs`'s `f_type`, ``FileSystem/fileSystemType(_:)``)
    /// is one where a kept descriptor's link count tells whether its file still has its name:
    /// local ones. Network and FUSE file systems may
    /// not see another machine's or the server's unlink, and overlayfs reports a lower layer's
    /// file's own link count, which a rename over its name in the merged folder leaves at 1 (a
    /// root baked into a container image): those keep no files.
    static func isLocalFileSystem(type: Int64) -> Bool {
        // From <linux/magic.h>.
        let local: Set<Int64> = [
            0xEF53,  // ext2, ext3, ext4
            0x0102_1994,  // tmpfs
            0x5846_5342,  // xfs
            0x9123_683E,  // btrfs
            0xF2F5_2010,  // f2fs
            0x2FC1_2FC1,  // zfs
            0xCA45_1A4E,  // bcachefs
        ]
        return local.contains(type)
    }
}
