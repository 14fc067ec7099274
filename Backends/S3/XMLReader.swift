/// A small XML reader for S3's responses (errors, listings, lifecycle configurations).
///
/// FoundationEssentials has no `XMLParser`, and S3's replies use a tiny subset of XML: elements,
/// text, the five predefined entities, numeric character references, CDATA, comments and a
/// declaration. This reader builds a tree of those and nothing else (no DTDs, so no entity
/// expansion attacks). It is bounded (input size, depth, element count) and never traps: any
/// malformed input gives nil.
struct XMLElement: Sendable {
    /// The local name (a namespace prefix is dropped).
    var name: String
    var children: [XMLElement] = []
    /// The concatenated character data directly inside this element.
    var text: String = ""
    /// Where the element sits in the parsed bytes: from its `<` to just past its closing `>`.
    var range: Range<Int> = 0..<0
    /// Just past the `>` of the element's start tag (its namespace declarations end there).
    var startTagEnd: Int = 0

    func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }
    /// The text of the first child named `name`.
    subscript(_ name: String) -> String? { child(name)?.text }

    struct Limits {
        var maxBytes = 16 << 20
        var maxDepth = 32
        var maxElements = 200_000
    }

    /// Parses a document; nil when it is not well-formed within the limits.
    static func parse(_ bytes: [UInt8], limits: Limits = Limits()) -> XMLElement? {
        guard bytes.count <= limits.maxBytes else { return nil }
        var parser = Parser(bytes: bytes, limits: limits)
        return parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        let limits: Limits
        var i = 0
        var elements = 0

        init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        mutating func document() -> XMLElement? {
            // Skip a BOM.
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }
            var root: XMLElement?
            while true {
                skipWhitespace()
                if i >= bytes.count { return root }
                guard bytes[i] == UInt8(ascii: "<") else { return nil }
                if starts(with: "<?") {
                    guard skip(past: "?>") else { return nil }
                } else if starts(with: "<!--") {
                    guard skip(past: "-->") else { return nil }
                } else if starts(with: "<!") {
                    return nil  // DOCTYPE and friends: not in S3's replies, refused.
                } else {
                    guard root == nil, let element = element(depth: 1) else { return nil }
                    root = element
                }
            }
        }

        mutating func element(depth: Int) -> XMLElement? {
            guard depth <= limits.maxDepth else { return nil }
            elements += 1
            guard elements <= limits.maxElements else { return nil }
            // At "<".
            let start = i
            i += 1
            guard let qualified = name() else { return nil }
            var element = XMLElement(name: localName(qualified))
            // Attributes are read and ignored.
            while true {
                skipWhitespace()
                guard i < bytes.count else { return nil }
                if bytes[i] == UInt8(ascii: "/") {
                    guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: ">") else { return nil }
                    i += 2
                    element.range = start..<i
                    element.startTagEnd = i
                    return element
                }
                if bytes[i] == UInt8(ascii: ">") {
                    i += 1
                    element.startTagEnd = i
                    break
                }
                guard name() != nil else { return nil }
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else { return nil }
                i += 1
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") else { return nil }
                let quote = bytes[i]
                i += 1
                while i < bytes.count, bytes[i] != quote { i += 1 }
                guard i < bytes.count else { return nil }
                i += 1
            }
            // Content.
            var text: [UInt8] = []
            while true {
                guard i < bytes.count else { return nil }
                let byte = bytes[i]
                if byte == UInt8(ascii: "<") {
                    if starts(with: "</") {
                        i += 2
                        guard let closing = name(), closing == qualified else { return nil }
                        skipWhitespace()
                        guard i < bytes.count, bytes[i] == UInt8(ascii: ">") else { return nil }
                        i += 1
                        element.text = String(decoding: text, as: UTF8.self)
                        element.range = start..<i
                        return element
                    } else if starts(with: "<!--") {
                        guard skip(past: "-->") else { return nil }
                    } else if starts(with: "<![CDATA[") {
                        i += 9
                        let start = i
                        guard skip(past: "]]>") else { return nil }
                        text += bytes[start..<(i - 3)]
                    } else if starts(with: "<?") {
                        guard skip(past: "?>") else { return nil }
                    } else {
                        guard let child = self.element(depth: depth + 1) else { return nil }
                        element.children.append(child)
                    }
                } else if byte == UInt8(ascii: "&") {
                    guard let decoded = entity() else { return nil }
                    text += decoded
                } else {
                    text.append(byte)
                    i += 1
                }
            }
        }

        mutating func entity() -> [UInt8]? {
            // At "&".
            let start = i + 1
            var end = start
            while end < bytes.count, end - start < 12, bytes[end] != UInt8(ascii: ";") { end += 1 }
            guard end < bytes.count, bytes[end] == UInt8(ascii: ";") else { return nil }
            let body = String(decoding: bytes[start..<end], as: UTF8.self)
            i = end + 1
            switch body {
            case "amp": return [UInt8(ascii: "&")]
            case "lt": return [UInt8(ascii: "<")]
            case "gt": return [UInt8(ascii: ">")]
            case "quot": return [UInt8(ascii: "\"")]
            case "apos": return [UInt8(ascii: "'")]
            default:
                guard body.hasPrefix("#") else { return nil }
                let digits = body.dropFirst()
                let value: UInt32?
                if digits.hasPrefix("x") || digits.hasPrefix("X") {
                    value = UInt32(digits.dropFirst(), radix: 16)
                } else {
                    value = UInt32(digits, radix: 10)
                }
                guard let value, let scalar = Unicode.Scalar(value) else { return nil }
                return Array(String(Character(scalar)).utf8)
            }
        }

        mutating func name() -> String? {
            let start = i
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r")
                    || b == UInt8(ascii: ">") || b == UInt8(ascii: "/") || b == UInt8(ascii: "=") || b == UInt8(ascii: "<")
                {
                    break
                }
                i += 1
            }
            guard i > start else { return nil }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        func localName(_ qualified: String) -> String {
            if let colon = qualified.lastIndex(of: ":") { return String(qualified[qualified.index(after: colon)...]) }
            return qualified
        }

        mutating func skipWhitespace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        }

        func starts(with literal: StaticString) -> Bool {
            let count = literal.utf8CodeUnitCount
            guard i + count <= bytes.count else { return false }
            let pointer = literal.utf8Start
            for k in 0..<count where bytes[i + k] != pointer[k] { return false }
            return true
        }

        /// Moves past the next occurrence of `literal`; false when there is none.
        mutating func skip(past literal: StaticString) -> Bool {
            while i < bytes.count {
                if starts(with: literal) {
                    i += literal.utf8CodeUnitCount
                    return true
                }
                i += 1
            }
            return false
        }
    }
}

/// Escapes text for an XML element body.
func xmlEscape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for ch in text.unicodeScalars {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out
}
