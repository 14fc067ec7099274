/// The error thrown by TierCache and its modules.
///
/// An opaque struct rather than an enum, so that new codes never break a user's exhaustive
/// `switch`. Compare ``code`` against the static members of ``Code``; ``message`` is for humans
/// and never contains secrets or payload bytes.
public struct TierCacheError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// A ``CacheKey`` part is empty, too long, or holds a forbidden character.
        public static let invalidKey = Code("invalidKey")
        /// Bytes are not a well-formed envelope: truncated, wrong lengths, wrong magic.
        public static let malformedEntry = Code("malformedEntry")
        /// The envelope's format version is one this build cannot read.
        public static let unsupportedFormatVersion = Code("unsupportedFormatVersion")
        /// The envelope's checksum does not match its bytes.
        public static let checksumMismatch = Code("checksumMismatch")
        /// An entry read for one key names another key.
        public static let keyMismatch = Code("keyMismatch")
        /// The entry was written by a serializer this cache is not configured with.
        public static let unknownSerializer = Code("unknownSerializer")
        /// The entry was written by a codec this cache is not configured with.
        public static let unknownCodec = Code("unknownCodec")
        /// The entry needs a compression dictionary that is not loaded.
        public static let dictionaryNotLoaded = Code("dictionaryNotLoaded")
        /// Encoding or decoding a value failed (malformed bytes or an unsupported shape).
        public static let serialization = Code("serialization")
        /// Compressing or decompressing failed; the message names the library's own code.
        public static let codec = Code("codec")
        /// A declared size is above the configured ceiling (a "decompression bomb").
        public static let sizeLimitExceeded = Code("sizeLimitExceeded")
        /// An operation did not finish before its deadline.
        public static let timeout = Code("timeout")
        /// A tier's storage failed (I/O, network, remote error).
        public static let storage = Code("storage")
        /// Configuration is invalid; the message names the bad entry.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// The operation was cancelled.
        public static let cancelled = Code("cancelled")

        /// Creates a code for a module outside the core (a backend or codec of the package).
        package static func custom(_ name: String) -> Code { Code(name) }

        public var description: String { name }
    }

    /// What kind of failure this is.
    public let code: Code
    /// A human-readable explanation, safe to log.
    public let message: String

    /// Creates an error. Modules of the package use the static factories.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "TierCacheError(\(code)): \(message)" }

    static func invalidKey(_ message: String) -> Self { Self(.invalidKey, message) }
    static func malformedEntry(_ message: String) -> Self { Self(.malformedEntry, message) }
}
