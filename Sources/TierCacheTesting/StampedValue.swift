/// A cache value that proves its own integrity and origin, for chaos and soak tests: it carries
/// the key it was written for, the writer's id, a sequence number and a checksum over all of
/// them and its body. A value read back from any tier is either ``isIntact`` and for the key
/// asked, or it is corrupt or foreign, and the test says which.
public struct StampedValue: Codable, Sendable, Hashable {
    /// The key's rendered name this value was written for.
    public var key: String
    /// Who wrote it (`process/task`).
    public var writer: String
    /// The writer's sequence number for this key (increases with every write).
    public var sequence: Int
    /// Filler of a chosen size, derived from the other fields.
    public var body: [UInt8]
    /// FNV-1a 64 over key, writer, sequence and body.
    public var checksum: UInt64

    /// Creates a value with a body of `size` bytes and its checksum.
    public init(key: String, writer: String, sequence: Int, size: Int) {
        self.key = key
        self.writer = writer
        self.sequence = sequence
        var state = UInt64(truncatingIfNeeded: sequence) &* 0x9E37_79B9_7F4A_7C15
        body = (0..<max(0, size)).map { index in
            state = state &+ 0x9E37_79B9_7F4A_7C15 &+ UInt64(index)
            return UInt8(truncatingIfNeeded: state >> 29)
        }
        checksum = 0
        checksum = computedChecksum
    }

    /// The checksum the fields give now.
    public var computedChecksum: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            hash = (hash ^ 0xFF) &* 0x0000_0100_0000_01B3
        }
        mix(key.utf8)
        mix(writer.utf8)
        mix(withUnsafeBytes(of: Int64(sequence).littleEndian) { Array($0) })
        mix(body)
        return hash
    }

    /// Whether the checksum matches the fields (no bit of the value was changed).
    public var isIntact: Bool { checksum == computedChecksum }
}
