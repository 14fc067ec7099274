import TierCache

/// An entry file's name: its key's 128-bit ``CacheKey/fingerprint``, held as two integers so that
/// a read builds no string to find its file or its record in the ``RecencyIndex``.
struct Fingerprint: Hashable, CustomStringConvertible {
    var high: UInt64
    var low: UInt64

    init(_ key: CacheKey) {
        (high, low) = key.fingerprintHalves
    }

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses a file name; nil unless it is 32 lowercase hex digits (``isEntryFileName(_:)``).
    init?(fileName: String) {
        guard isEntryFileName(fileName), let high = UInt64(fileName.prefix(16), radix: 16),
              let low = UInt64(fileName.suffix(16), radix: 16)
        else { return nil }
        self.high = high
        self.low = low
    }

    /// The 32 hex digits: the file name (the same spelling as ``CacheKey/fingerprint``).
    var description: String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            writeDigits(to: buffer.baseAddress!)
            return 32
        }
    }

    /// The shard folder's name: the first two digits.
    var shard: String { String(description.prefix(2)) }

    /// Writes the 32 digits at `out`.
    func writeDigits(to out: UnsafeMutablePointer<UInt8>) {
        CacheKey.writeFingerprintDigits((high, low), to: out)
    }
}
