/// XXH64 (xxHash, 64-bit), used for the envelope checksum and key fingerprints.
///
/// Written in Swift because the core links no C module; docs/format.md says why XXH64 and not
/// CRC32C. Verified against the reference test vectors in the tests.
package enum XXH64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    package static func hash(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0) -> UInt64 {
        if let result = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0), seed: seed) }) {
            return result
        }
        let array = Array(bytes)
        return array.withUnsafeBytes { hash($0, seed: seed) }
    }

    package static func hash(_ string: String, seed: UInt64 = 0) -> UInt64 {
        var copy = string
        return copy.withUTF8 { hash(UnsafeRawBufferPointer($0), seed: seed) }
    }

    @inline(__always)
    private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        var acc = acc &+ input &* p2
        acc = (acc << 31) | (acc >> 33)
        return acc &* p1
    }

    @inline(__always)
    private static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        var acc = acc ^ round(0, val)
        acc = acc &* p1 &+ p4
        return acc
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

    /// The four accumulators of the 32-byte stripes.
    private struct Lanes {
        var v1: UInt64
        var v2: UInt64
        var v3: UInt64
        var v4: UInt64

        @inline(__always)
        init(seed: UInt64) {
            v1 = seed &+ p1 &+ p2
            v2 = seed &+ p2
            v3 = seed
            v4 = seed &- p1
        }

        /// Consumes every whole 32-byte stripe of `count` bytes at `base`; returns the bytes consumed.
        @inline(__always)
        mutating func consume(_ base: UnsafeRawPointer, count: Int) -> Int {
            var offset = 0
            let limit = count - 32
            var a = v1, b = v2, c = v3, d = v4
            while offset <= limit {
                a = XXH64.round(a, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                b = XXH64.round(b, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
                c = XXH64.round(c, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self)))
                d = XXH64.round(d, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self)))
                offset &+= 32
            }
            v1 = a; v2 = b; v3 = c; v4 = d
            return offset
        }

        @inline(__always)
        func merged() -> UInt64 {
            var h = XXH64.rotl(v1, 1) &+ XXH64.rotl(v2, 7) &+ XXH64.rotl(v3, 12) &+ XXH64.rotl(v4, 18)
            h = XXH64.merge(h, v1)
            h = XXH64.merge(h, v2)
            h = XXH64.merge(h, v3)
            h = XXH64.merge(h, v4)
            return h
        }
    }

    package static func hash(_ buffer: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let count = buffer.count
        guard let base = buffer.baseAddress else { return finalize(seed &+ p5, count: 0, tail: buffer, from: 0) }
        var offset = 0
        var h: UInt64
        if count >= 32 {
            var lanes = Lanes(seed: seed)
            offset = lanes.consume(base, count: count)
            h = lanes.merged()
        } else {
            h = seed &+ p5
        }
        return finalize(h &+ UInt64(count), count: count, tail: buffer, from: offset)
    }

    /// The hash of `first` followed by `second`, as if they were one buffer, without joining
    /// them: an envelope's header and its payload read into separate buffers.
    package static func hash(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let total = first.count + second.count
        guard first.count > 0 else { return hash(second, seed: seed) }
        guard second.count > 0 else { return hash(first, seed: seed) }
        // Up to 64 bytes where the two buffers meet: the rest of `first`'s last partial stripe and
        // the start of `second`.
        return withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { join in
            let joinBase = UnsafeMutableRawPointer(join.baseAddress!)
            if total < 32 {
                joinBase.copyMemory(from: first.baseAddress!, byteCount: first.count)
                (joinBase + first.count).copyMemory(from: second.baseAddress!, byteCount: second.count)
                return hash(UnsafeRawBufferPointer(start: joinBase, count: total), seed: seed)
            }
            var lanes = Lanes(seed: seed)
            let fromFirst = lanes.consume(first.baseAddress!, count: first.count)
            let rest = first.count - fromFirst
            let borrowed = min(second.count, 32 - rest)
            joinBase.copyMemory(from: first.baseAddress! + fromFirst, byteCount: rest)
            (joinBase + rest).copyMemory(from: second.baseAddress!, byteCount: borrowed)
            let tail: UnsafeRawBufferPointer
            if rest + borrowed == 32 {
                _ = lanes.consume(UnsafeRawPointer(joinBase), count: 32)
                let fromSecond = borrowed + lanes.consume(second.baseAddress! + borrowed, count: second.count - borrowed)
                tail = UnsafeRawBufferPointer(rebasing: second[fromSecond...])
            } else {
                tail = UnsafeRawBufferPointer(start: joinBase, count: rest + borrowed)
            }
            return finalize(lanes.merged() &+ UInt64(total), count: tail.count, tail: tail, from: 0)
        }
    }

    @inline(__always)
    private static func finalize(_ hIn: UInt64, count: Int, tail buffer: UnsafeRawBufferPointer, from start: Int) -> UInt64 {
        var h = hIn
        var offset = start
        if let base = buffer.baseAddress {
            while offset + 8 <= count {
                let k = round(0, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                h ^= k
                h = rotl(h, 27) &* p1 &+ p4
                offset += 8
            }
            if offset + 4 <= count {
                h ^= UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))) &* p1
                h = rotl(h, 23) &* p2 &+ p3
                offset += 4
            }
            while offset < count {
                h ^= UInt64(buffer[offset]) &* p5
                h = rotl(h, 11) &* p1
                offset += 1
            }
        }
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        h ^= h >> 32
        return h
    }
}
