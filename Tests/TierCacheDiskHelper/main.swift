// A child process for TierCacheDiskTests: the crash-safety test kills it with SIGKILL while it
// writes; the multi-process test runs two of it against one root; the neighbour tests use it as
// another process (or another user) sharing /tmp.
//
//   tiercache-disk-helper crash-writer <root> <seed>
//       writes forever (until killed) to keys c0..c49 with payloads of varied size.
//   tiercache-disk-helper hammer <root> <seed> <operations> <maxBytes> <maxEntries>
//       four tasks put/get/remove keys h0..h99; exits 0 when every read was intact, 1 otherwise,
//       and prints `hammer reads=<n> hits=<n> corrupt=<n> bad=<n>`.
//   tiercache-disk-helper hold-locks <root> 0 <path relative to root>...
//       takes an exclusive flock on each (a folder or a file, as the tier does), prints `locked`,
//       then stops itself with SIGSTOP, holding them, until it is continued and killed.
//   tiercache-disk-helper plant-root <root> <uid> <victim> <namespace> <name>
//       drops to user <uid> (from root) and makes <root> as a hostile neighbour would: mode 0755,
//       `usage` a symbolic link to <victim>, and an entry for <namespace>/<name> whose payload
//       is "planted"; prints `planted`.
#if canImport(Glibc)
import Glibc
#endif
import TierCache
import TierCacheDisk

/// The payload for `name` at `generation`: 8 bytes of generation, then bytes derived from both.
func payload(name: String, generation: UInt64, size: Int) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(size + 8)
    bytes.appendLE(generation)
    let seed = UInt64(truncatingIfNeeded: name.utf8.reduce(0) { $0 &* 31 &+ Int($1) })
    for index in 0..<size {
        bytes.append(UInt8(truncatingIfNeeded: (seed &+ generation &* 7 &+ UInt64(index) &* 13) >> 1))
    }
    return bytes
}

/// Whether `entry` holds a payload `payload(name:generation:size:)` could have produced for its key.
func isIntact(_ entry: CacheEntry, name: String) -> Bool {
    guard entry.key.name == name, entry.payload.count >= 8 else { return false }
    let generation = entry.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    return entry.payload == payload(name: name, generation: UInt64(littleEndian: generation), size: entry.payload.count - 8)
}

func makeEntry(namespace: String, name: String, generation: UInt64, size: Int) throws -> CacheEntry {
    let key = try CacheKey(namespace: namespace, name: name)
    let bytes = payload(name: name, generation: generation, size: size)
    return CacheEntry(
        key: key, serializerID: .json, codecID: .identity,
        createdAt: WallTime(millisecondsSince1970: 0),
        freshUntil: WallTime(millisecondsSince1970: Int64.max / 2),
        staleUntil: WallTime(millisecondsSince1970: Int64.max / 2),
        uncompressedLength: UInt64(bytes.count), payload: bytes)
}

/// A small deterministic generator (SplitMix64).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 4 else {
    print("usage: tiercache-disk-helper crash-writer|hammer|hold-locks|plant-root <root> <seed> ...")
    exit(2)
}
let root = arguments[2]
let seed = UInt64(arguments[3]) ?? 1

switch arguments[1] {
case "crash-writer":
    let tier = DiskTier(configuration: .init(root: root, maxBytes: 64 << 20))
    var random = SplitMix(state: seed)
    var generation: UInt64 = seed << 32
    // Tell the parent we are about to write, so that kills land during writes, not start-up.
    print("ready")
    fflush(nil)
    while true {
        generation += 1
        let name = "c\(random.next() % 50)"
        let size = Int(random.next() % 3 == 0 ? random.next() % 300_000 : random.next() % 8_000)
        try await tier.put(makeEntry(namespace: "crash", name: name, generation: generation, size: size))
        if random.next() % 10 == 0 {
            try await tier.remove(CacheKey(namespace: "crash", name: "c\(random.next() % 50)"))
        }
    }

case "hammer":
    guard arguments.count >= 7, let operations = Int(arguments[4]), let maxBytes = UInt64(arguments[5]),
          let maxEntries = Int(arguments[6]) else {
        print("usage: tiercache-disk-helper hammer <root> <seed> <operations> <maxBytes> <maxEntries>")
        exit(2)
    }
    let tier = DiskTier(configuration: .init(root: root, maxBytes: maxBytes, maxEntries: maxEntries, maxEntrySize: 64 << 10))
    let bad = try await withThrowingTaskGroup(of: Int.self) { group in
        for task in 0..<4 {
            group.addTask {
                var random = SplitMix(state: seed &* 1000 &+ UInt64(task))
                var bad = 0
                for step in 0..<operations {
                    let name = "h\(random.next() % 100)"
                    switch random.next() % 10 {
                    case 0..<5:
                        let size = Int(random.next() % 16_000)
                        try await tier.put(makeEntry(namespace: "hammer", name: name,
                                                     generation: seed << 40 | UInt64(task) << 32 | UInt64(step), size: size))
                    case 5..<9:
                        if let entry = try await tier.get(CacheKey(namespace: "hammer", name: name)), !isIntact(entry, name: name) {
                            bad += 1
                        }
                    default:
                        try await tier.remove(CacheKey(namespace: "hammer", name: name))
                    }
                }
                return bad
            }
        }
        var total = 0
        for try await count in group { total += count }
        return total
    }
    let stats = tier.statistics
    print("hammer reads=\(stats.hits + stats.misses) hits=\(stats.hits) corrupt=\(stats.corrupt) bad=\(bad) writes=\(stats.writes) evictions=\(stats.evictions)")
    fflush(nil)
    exit(bad == 0 && stats.corrupt == 0 ? 0 : 1)

case "hold-locks":
    var held: [Int32] = []
    for relative in arguments.dropFirst(4) {
        let fd = open(root + "/" + relative, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, flock(fd, LOCK_EX) == 0 else {
            print("cannot lock \(relative): errno \(errno)")
            exit(1)
        }
        held.append(fd)
    }
    print("locked")
    fflush(nil)
    raise(SIGSTOP)
    // Continued: keep holding until killed.
    while true { pause() }

case "plant-root":
    guard arguments.count >= 7, let user = uid_t(arguments[3]) else {
        print("usage: tiercache-disk-helper plant-root <root> <uid> <victim> <namespace> <name>")
        exit(2)
    }
    guard setgid(gid_t(user)) == 0, setuid(user) == 0, geteuid() == user else {
        print("cannot become user \(user): errno \(errno)")
        exit(1)
    }
    let key = try CacheKey(namespace: arguments[5], name: arguments[6])
    let fingerprint = key.fingerprint
    let shard = root + "/ns/" + key.namespace + "/" + fingerprint.prefix(2)
    guard mkdir(root, 0o755) == 0, chmod(root, 0o755) == 0, symlink(arguments[4], root + "/usage") == 0,
          mkdir(root + "/ns", 0o755) == 0, mkdir(root + "/ns/" + key.namespace, 0o755) == 0, mkdir(shard, 0o755) == 0
    else {
        print("cannot plant \(root): errno \(errno)")
        exit(1)
    }
    let planted = Array("planted".utf8)
    let entry = CacheEntry(
        key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 0),
        freshUntil: WallTime(millisecondsSince1970: Int64.max / 2), staleUntil: WallTime(millisecondsSince1970: Int64.max / 2),
        uncompressedLength: UInt64(planted.count), payload: planted)
    let fd = open(shard + "/" + fingerprint, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    let bytes = entry.encoded()
    guard fd >= 0, bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
        print("cannot plant the entry: errno \(errno)")
        exit(1)
    }
    close(fd)
    print("planted")

default:
    print("unknown mode \(arguments[1])")
    exit(2)
}
