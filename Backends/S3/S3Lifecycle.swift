/// A bucket's lifecycle configuration as S3 stores it.
///
/// Every rule read from S3 keeps its XML exactly as S3 returned it (``Rule/xml``), and writing a
/// configuration sends those bytes back unchanged: a rule this library does not understand (a tag
/// or size filter, a transition, a noncurrent-version action, a date, whatever S3 adds next) is
/// never rewritten. Only rules built here (``Rule/init(_:)``) have XML of our making.
///
/// ``Rule/prefix`` and ``Rule/expirationDays`` are a reading of the XML for display and for
/// deciding whether a rule expires a prefix; they are never written back.
public struct S3LifecycleConfiguration: Sendable, Hashable {
    /// One `<Rule>` element.
    public struct Rule: Sendable, Hashable {
        /// The rule's `ID` (empty when it has none).
        public let id: String
        /// The `<Rule>…</Rule>` element as S3 returned it (or as built by ``init(_:)``); this is
        /// what a write sends.
        public let xml: String
        /// Whether `Status` is `Enabled`.
        public let isEnabled: Bool
        /// The key prefix the rule is limited to when its filter is a prefix and nothing else
        /// (`""` for a rule without a filter); nil when it filters on more (tags, object size).
        public let prefix: String?
        /// `Expiration/Days` when the rule expires current objects a number of days after
        /// creation; nil otherwise (a date, delete markers only, or no expiration).
        public let expirationDays: Int?
        /// The names of the rule's actions as written (`Expiration`, `Transition`,
        /// `NoncurrentVersionExpiration`, `AbortIncompleteMultipartUpload`, ...).
        public let actions: [String]

        /// A rule that expires objects under ``S3LifecycleRule/prefix`` after
        /// ``S3LifecycleRule/expirationDays`` days.
        public init(_ rule: S3LifecycleRule) {
            id = rule.id
            isEnabled = rule.isEnabled
            prefix = rule.prefix
            expirationDays = rule.expirationDays
            actions = ["Expiration"]
            xml = "<Rule><ID>\(xmlEscape(rule.id))</ID><Filter><Prefix>\(xmlEscape(rule.prefix))</Prefix></Filter>"
                + "<Status>\(rule.isEnabled ? "Enabled" : "Disabled")</Status>"
                + "<Expiration><Days>\(rule.expirationDays)</Days></Expiration></Rule>"
        }

        /// Reads a parsed `<Rule>` whose source text is `xml`.
        init(element rule: XMLElement, xml: String) {
            self.xml = xml
            id = rule["ID"] ?? ""
            isEnabled = rule["Status"] == "Enabled"
            if let filter = rule.child("Filter") {
                if filter.children.isEmpty {
                    prefix = ""
                } else if filter.children.count == 1, let only = filter.children.first, only.name == "Prefix" {
                    prefix = only.text
                } else {
                    prefix = nil
                }
            } else {
                prefix = rule["Prefix"] ?? ""  // the pre-2018 form: <Prefix> directly in <Rule>
            }
            expirationDays = rule.child("Expiration")?["Days"].flatMap { Int($0) }
            actions = rule.children.map(\.name).filter { !["ID", "Filter", "Prefix", "Status"].contains($0) }
        }
    }

    /// The rules, in the order S3 returned them.
    public var rules: [Rule]
    /// The bucket's `x-amz-transition-default-minimum-object-size` as S3 returned it; sent back
    /// unchanged on a write so that rewriting the rules does not reset it.
    public var transitionDefaultMinimumObjectSize: String?
    /// The document's start tag as S3 wrote it (with its namespace declarations), so that the
    /// rules' XML is read in the same namespaces when written back, and the matching end tag.
    var startTag: String
    var endTag: String

    static let defaultStartTag = "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    static let defaultEndTag = "</LifecycleConfiguration>"

    /// Creates a configuration.
    public init(rules: [Rule] = [], transitionDefaultMinimumObjectSize: String? = nil) {
        self.rules = rules
        self.transitionDefaultMinimumObjectSize = transitionDefaultMinimumObjectSize
        startTag = Self.defaultStartTag
        endTag = Self.defaultEndTag
    }

    /// The rule with this ID, if any.
    public func rule(id: String) -> Rule? { rules.first { $0.id == id } }

    /// This configuration with `rule` in the place of the rule with the same ID, or appended
    /// when there is none. Every other rule is kept as it is.
    public func replacing(_ rule: Rule) -> S3LifecycleConfiguration {
        var copy = self
        if let index = copy.rules.firstIndex(where: { $0.id == rule.id }) {
            copy.rules[index] = rule
        } else {
            copy.rules.append(rule)
        }
        return copy
    }

    /// This configuration without the rule with this ID. Every other rule is kept as it is.
    public func removing(id: String) -> S3LifecycleConfiguration {
        var copy = self
        copy.rules.removeAll { $0.id == id }
        return copy
    }

    /// The document a PutBucketLifecycleConfiguration sends: every rule's ``Rule/xml``, in order.
    public var xml: String {
        var text = startTag
        for rule in rules { text += rule.xml }
        return text + endTag
    }

    /// Reads a GetBucketLifecycleConfiguration answer.
    /// - Throws: ``S3Error/Code/malformedResponse`` when it is not a lifecycle configuration.
    static func parse(_ body: [UInt8], transitionDefaultMinimumObjectSize: String?, status: Int)
        throws(S3Error) -> S3LifecycleConfiguration
    {
        guard let root = XMLElement.parse(body), root.name == "LifecycleConfiguration",
              root.startTagEnd > root.range.lowerBound, root.startTagEnd <= body.count
        else {
            throw S3Error(.malformedResponse, "lifecycle answer is not a LifecycleConfiguration", status: status)
        }
        var configuration = S3LifecycleConfiguration(
            rules: root.children("Rule").map { rule in
                Rule(element: rule, xml: String(decoding: body[rule.range], as: UTF8.self))
            },
            transitionDefaultMinimumObjectSize: transitionDefaultMinimumObjectSize)
        let start = body[root.range.lowerBound..<root.startTagEnd]
        // A self-closing root (no rules) has no start tag to reuse.
        if !(start.count >= 2 && start[start.endIndex - 2] == UInt8(ascii: "/")) {
            configuration.startTag = String(decoding: start, as: UTF8.self)
            // The end tag repeats the start tag's name, namespace prefix included.
            let name = start.dropFirst().prefix { ![0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ">"), UInt8(ascii: "/")].contains($0) }
            configuration.endTag = "</" + String(decoding: name, as: UTF8.self) + ">"
        }
        return configuration
    }
}

/// What a change to a bucket's lifecycle did (or, in a dry run, would do).
public struct S3LifecycleUpdate: Sendable, Hashable {
    /// The configuration read from the bucket.
    public var before: S3LifecycleConfiguration
    /// The configuration written (or that would be written).
    public var after: S3LifecycleConfiguration
    /// Whether it was written: false in a dry run and when nothing changed.
    public var written: Bool

    /// Whether the configuration changes.
    public var changes: Bool { before != after }
}
