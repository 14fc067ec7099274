/// An HTTP request method.
///
/// An open `RawRepresentable` struct rather than an enum: any token is accepted, and the common
/// methods are static members. The method is sent exactly as ``rawValue`` is spelled.
public struct HTTPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The method token as sent on the wire, for example `"GET"`.
    public let rawValue: String

    /// Creates a method from its token. An invalid token (empty, or with characters outside
    /// RFC 9110's `tchar`) is rejected by ``HTTPClient/execute(_:)`` with
    /// ``HTTPClientError/Code/invalidRequest``.
    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// `GET`: the response body is collected in memory.
    public static let get = HTTPMethod(rawValue: "GET")
    /// `HEAD`: no response body is read, even if the server announces a `Content-Length`.
    public static let head = HTTPMethod(rawValue: "HEAD")
    /// `PUT`: the request body is sent with a `Content-Length` (possibly 0).
    public static let put = HTTPMethod(rawValue: "PUT")
    /// `POST`: the request body is sent with a `Content-Length` (possibly 0).
    public static let post = HTTPMethod(rawValue: "POST")
    /// `DELETE`: a body is sent only if the request has one.
    public static let delete = HTTPMethod(rawValue: "DELETE")

    /// The method token.
    public var description: String { rawValue }
}

/// An ordered list of HTTP header fields.
///
/// Order and the case of names are preserved as given (requests) or as received (responses);
/// lookups by name are ASCII case-insensitive. The same name may appear several times.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One header field.
    public typealias Element = (name: String, value: String)

    private var fields: [Element]

    /// Creates an empty header list.
    public init() {
        fields = []
    }

    /// Creates a header list from `(name, value)` pairs, keeping their order.
    public init<S: Sequence>(_ pairs: S) where S.Element == (String, String) {
        fields = pairs.map { (name: $0.0, value: $0.1) }
    }

    /// Creates a header list from labeled `(name:, value:)` pairs (such as another list's
    /// elements), keeping their order.
    public init<S: Sequence>(_ fields: S) where S.Element == Element {
        self.fields = Array(fields)
    }

    /// Creates a header list from a literal, keeping its order.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// The number of fields, counting repeated names once per occurrence.
    public var count: Int { fields.count }

    /// Whether there are no fields.
    public var isEmpty: Bool { fields.isEmpty }

    /// Appends a field, keeping any existing field of the same name.
    public mutating func add(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// Replaces every field named `name` (case-insensitively) with one field, or appends it.
    public mutating func replaceOrAdd(name: String, value: String) {
        if let first = fields.firstIndex(where: { Self.equalsIgnoringCase($0.name, name) }) {
            fields[first] = (name: name, value: value)
            var index = fields.index(after: first)
            while index < fields.endIndex {
                if Self.equalsIgnoringCase(fields[index].name, name) {
                    fields.remove(at: index)
                } else {
                    index += 1
                }
            }
        } else {
            add(name: name, value: value)
        }
    }

    /// Removes every field named `name` (case-insensitively).
    public mutating func remove(name: String) {
        fields.removeAll { Self.equalsIgnoringCase($0.name, name) }
    }

    /// The value of the first field named `name` (case-insensitively), or `nil`.
    public subscript(name: String) -> String? {
        fields.first { Self.equalsIgnoringCase($0.name, name) }?.value
    }

    /// The values of every field named `name` (case-insensitively), in order.
    public func values(for name: String) -> [String] {
        fields.compactMap { Self.equalsIgnoringCase($0.name, name) ? $0.value : nil }
    }

    /// Whether a field named `name` (case-insensitively) is present.
    public func contains(name: String) -> Bool {
        fields.contains { Self.equalsIgnoringCase($0.name, name) }
    }

    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[Element]> {
        fields.makeIterator()
    }

    /// The fields as `[Name: value, ...]`, for debugging. Values are included: do not log the
    /// headers of signed requests.
    public var description: String {
        "[" + fields.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }

    /// ASCII case-insensitive comparison, as HTTP field names are compared.
    static func equalsIgnoringCase(_ lhs: String, _ rhs: String) -> Bool {
        var left = lhs.utf8.makeIterator()
        var right = rhs.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil):
                return true
            case let (l?, r?):
                if l != r && asciiLower(l) != asciiLower(r) { return false }
            default:
                return false
            }
        }
    }

    @inline(__always)
    static func asciiLower(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}

/// An HTTP request, sent by ``HTTPClient/execute(_:)``.
public struct HTTPRequest: Sendable {
    /// The method.
    public var method: HTTPMethod
    /// The absolute URL (`http://` or `https://`), already percent-encoded: it is sent as given,
    /// with no normalization (S3 signatures depend on that).
    public var url: String
    /// Header fields sent in this order after the ones libcurl adds (`Host`, `User-Agent`,
    /// `Accept`, `Content-Length`); a field named here replaces libcurl's own. A field with an
    /// empty value is sent empty.
    public var headers: HTTPHeaders
    /// The request body, sent from memory with a `Content-Length` (never chunked). Sent for `PUT`
    /// and `POST` always (an empty body gives `Content-Length: 0`), for other methods only when
    /// non-empty.
    public var body: [UInt8]
    /// The deadline for the whole transfer (connect, send, wait, receive), or `nil` to use
    /// ``HTTPClient/Configuration/timeout``.
    public var timeout: Duration?
    /// The deadline for establishing the connection (DNS, TCP, TLS), or `nil` to use
    /// ``HTTPClient/Configuration/connectTimeout``. Irrelevant when a pooled connection is reused.
    public var connectTimeout: Duration?
    /// The largest response body accepted for this request, or `nil` to use
    /// ``HTTPClient/Configuration/maxResponseBodyBytes``. A larger `Content-Length` fails the
    /// transfer before any body byte is read; a body without one (chunked, or delimited by the
    /// connection's close) fails as soon as it grows past the limit. Either way the transfer is
    /// aborted with ``HTTPClientError/Code/responseTooLarge`` and its connection closed.
    public var maxResponseBodyBytes: Int?
    /// The largest body accepted when the status is not 2xx (an error document, a proxy's error
    /// page), or `nil` to use ``HTTPClient/Configuration/maxErrorBodyBytes``. Applies on top of
    /// ``maxResponseBodyBytes``: the smaller of the two wins.
    public var maxErrorBodyBytes: Int?

    /// Creates a request.
    /// - Parameters:
    ///   - method: The method; `GET` by default.
    ///   - url: The absolute, percent-encoded URL.
    ///   - headers: Header fields to send.
    ///   - body: The body, sent with a `Content-Length`.
    ///   - timeout: Total deadline; `nil` uses the client's configuration.
    ///   - connectTimeout: Connect deadline; `nil` uses the client's configuration.
    ///   - maxResponseBodyBytes: Largest response body; `nil` uses the client's configuration.
    ///   - maxErrorBodyBytes: Largest body with a non-2xx status; `nil` uses the client's
    ///     configuration.
    public init(
        method: HTTPMethod = .get,
        url: String,
        headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [],
        timeout: Duration? = nil,
        connectTimeout: Duration? = nil,
        maxResponseBodyBytes: Int? = nil,
        maxErrorBodyBytes: Int? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.maxResponseBodyBytes = maxResponseBodyBytes
        self.maxErrorBodyBytes = maxErrorBodyBytes
    }
}

/// An HTTP response: any status is a response, not an error.
public struct HTTPResponse: Sendable {
    /// The status code of the final response (interim `1xx` responses are skipped).
    public var status: Int
    /// The final response's header fields, in the order and case the server sent them.
    public var headers: HTTPHeaders
    /// The body bytes as received (no content decoding); empty for `HEAD`.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}
