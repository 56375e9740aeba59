import Foundation

/// Recognised string formats: values of these formats are volatile by nature (ids, times).
public enum StringFormat: String, Sendable, CaseIterable {
    case dateTime = "date-time"
    case date
    case uuid
    case uri
    case email
    case ip
    case numeric = "numeric string"

    /// The format of `text`, if it has one.
    public static func of(_ text: String) -> StringFormat? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 2048 else { return nil }
        let digit = { (b: UInt8) in b >= 0x30 && b <= 0x39 }
        if bytes.count == 36, UUID(uuidString: text) != nil { return .uuid }
        if bytes.count >= 10, digit(bytes[0]), digit(bytes[1]), digit(bytes[2]), digit(bytes[3]), bytes[4] == 0x2D,
            digit(bytes[5]), digit(bytes[6]), bytes[7] == 0x2D, digit(bytes[8]), digit(bytes[9])
        {
            if bytes.count == 10 { return .date }
            if bytes[10] == 0x54 || bytes[10] == 0x74 || bytes[10] == 0x20, bytes.count >= 16 { return .dateTime }
        }
        if text.hasPrefix("-") ? isNumber(text.dropFirst()) : isNumber(Substring(text)) { return .numeric }
        if let colon = text.range(of: "://"), colon.lowerBound > text.startIndex,
            text[..<colon.lowerBound].allSatisfy({ $0.isLetter || $0 == "+" || $0 == "-" || $0 == "." }),
            !text.contains(" ")
        {
            return .uri
        }
        if let at = text.firstIndex(of: "@"), at > text.startIndex, text[text.index(after: at)...].contains("."),
            !text.contains(" "), text.filter({ $0 == "@" }).count == 1
        {
            return .email
        }
        if isIPv4(text)
            || (text.contains(":") && text.split(separator: ":", omittingEmptySubsequences: false).count >= 3
                && text.allSatisfy { $0.isHexDigit || $0 == ":" })
        {
            return .ip
        }
        return nil
    }

    static func isNumber(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return false }
        return parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    static func isIPv4(_ text: String) -> Bool {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { !$0.isEmpty && $0.count <= 3 && UInt8($0) != nil }
    }
}

/// The JSON type of a value as the consumer sees it; a redaction marker stands for its type.
public enum JSONKind: String, Sendable, Hashable, Comparable, CaseIterable {
    case null, boolean, integer, number, string, array, object

    public static func of(_ value: JSONValue) -> JSONKind {
        if case .string(let text) = value, text.hasPrefix("<redacted:"), text.hasSuffix(">") {
            let name = String(text.dropFirst(10).dropLast())
            if let kind = JSONKind(rawValue: name) { return kind }
        }
        return JSONKind(rawValue: JSONShape.typeName(value)) ?? .string
    }

    /// Integer is a kind of number: the consumer's parser reads both.
    public var compatibilityClass: JSONKind { self == .integer ? .number : self }

    public static func < (lhs: JSONKind, rhs: JSONKind) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What the real service sent at one JSON path, over every sample of an endpoint.
public final class ShapeNode: @unchecked Sendable {
    /// Samples in which this path was present.
    public private(set) var count = 0
    public private(set) var kinds: [JSONKind: Int] = [:]
    /// Objects seen here, and how often each member was present in them.
    public private(set) var objectCount = 0
    public private(set) var members: [String: ShapeNode] = [:]
    public private(set) var memberOrder: [String] = []
    /// Every element of every array seen here, as one union.
    public private(set) var items: ShapeNode?
    /// Distinct scalar values (serialised), capped; `nil` once there were too many to keep.
    public private(set) var values: [String: Int]? = [:]
    public private(set) var formats: [StringFormat?: Int] = [:]
    public private(set) var stringCount = 0
    /// A sample value (the first seen) for reports.
    public private(set) var sample: JSONValue?

    static let valueCap = 64

    public init() {}

    public func add(_ value: JSONValue) {
        count += 1
        let kind = JSONKind.of(value)
        kinds[kind, default: 0] += 1
        if sample == nil || sample == .null { sample = Self.abbreviated(value) }
        switch value {
        case .object(let pairs):
            objectCount += 1
            for (key, member) in pairs {
                if members[key] == nil {
                    members[key] = ShapeNode()
                    memberOrder.append(key)
                }
                members[key]!.add(member)
            }
        case .array(let elements):
            let union = items ?? ShapeNode()
            for element in elements { union.add(element) }
            items = union
        case .string(let text):
            stringCount += 1
            formats[kind == .string ? StringFormat.of(text) : nil, default: 0] += 1
            note(value.serialized())
        case .null:
            break
        default:
            note(value.serialized())
        }
    }

    private func note(_ key: String) {
        guard var known = values else { return }
        known[key, default: 0] += 1
        values = known.count > Self.valueCap ? nil : known
    }

    static func abbreviated(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let pairs) where pairs.count > 8: return .object(Array(pairs.prefix(8)))
        case .array(let items) where items.count > 3: return .array(Array(items.prefix(3)))
        case .string(let text) where text.count > 200: return .string(String(text.prefix(200)) + "…")
        default: return value
        }
    }

    /// Non-null kinds seen here, as compatibility classes (integer counts as number).
    public var valueClasses: Set<JSONKind> {
        Set(kinds.keys.filter { $0 != .null }.map(\.compatibilityClass))
    }

    public var sendsNull: Bool { kinds[.null, default: 0] > 0 }
    public var sendsValues: Bool { kinds.contains { $0.key != .null && $0.value > 0 } }

    /// Whether `key` was in every object seen here.
    public func isRequired(_ key: String) -> Bool {
        (members[key]?.count ?? 0) == objectCount && objectCount > 0
    }

    /// An object keyed by data (ids, codes) rather than by field names.
    public var isMap: Bool {
        guard objectCount > 0, !members.isEmpty else { return false }
        return members.keys.allSatisfy { Endpoint.isIdentifier($0) || StringFormat.of($0) != nil }
    }

    /// The member union of a map: every value, whatever its key.
    public lazy var mapValues: ShapeNode = {
        let union = ShapeNode()
        union.absorb(members.values)
        return union
    }()

    private func absorb<S: Sequence>(_ nodes: S) where S.Element == ShapeNode {
        for node in nodes { merge(node) }
    }

    /// Adds `other`'s observations to this node.
    func merge(_ other: ShapeNode) {
        count += other.count
        for (kind, n) in other.kinds { kinds[kind, default: 0] += n }
        objectCount += other.objectCount
        for key in other.memberOrder {
            if members[key] == nil {
                members[key] = ShapeNode()
                memberOrder.append(key)
            }
            members[key]!.merge(other.members[key]!)
        }
        if let otherItems = other.items {
            let union = items ?? ShapeNode()
            union.merge(otherItems)
            items = union
        }
        if let theirs = other.values, var ours = values {
            for (key, n) in theirs { ours[key, default: 0] += n }
            values = ours.count > Self.valueCap ? nil : ours
        } else {
            values = nil
        }
        for (format, n) in other.formats { formats[format, default: 0] += n }
        stringCount += other.stringCount
        if sample == nil { sample = other.sample }
    }

    /// The one format every string here had, if any.
    public var consistentFormat: StringFormat? {
        guard stringCount > 0, formats.count == 1, let only = formats.keys.first else { return nil }
        return only
    }

    /// A small closed set of string values, when enough samples make it believable.
    public var closedSet: Set<String>? {
        guard stringCount >= 8, consistentFormat == nil, let values,
            kinds.keys.allSatisfy({ $0 == .string || $0 == .null })
        else { return nil }
        let strings = values.keys.filter { $0.hasPrefix("\"") }
        guard !strings.isEmpty, strings.count <= 6, strings.count * 2 <= stringCount else { return nil }
        return Set(strings)
    }

    /// The value every sample had, when there were at least two samples.
    public var stableValue: String? {
        guard count >= 2, let values, values.count == 1, let only = values.first, only.value == count else {
            return nil
        }
        return only.key
    }
}
