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
        // Runs on every string of every recorded body: bytes only, no Foundation, no copies.
        var text = text
        return text.withUTF8 { of(bytes: $0) }
    }

    static func of(bytes: UnsafeBufferPointer<UInt8>) -> StringFormat? {
        let count = bytes.count
        guard count > 0, count <= 2048 else { return nil }
        if count == 36 && isUUID(bytes) { return .uuid }
        if count >= 10, isDigit(bytes[0]), isDigit(bytes[1]), isDigit(bytes[2]), isDigit(bytes[3]), bytes[4] == 0x2D,
            isDigit(bytes[5]), isDigit(bytes[6]), bytes[7] == 0x2D, isDigit(bytes[8]), isDigit(bytes[9])
        {
            if count == 10 { return .date }
            if bytes[10] == 0x54 || bytes[10] == 0x74 || bytes[10] == 0x20, count >= 16 { return .dateTime }
        }
        if isNumber(bytes[0] == 0x2D ? bytes[1...] : bytes[...]) { return .numeric }
        let hasSpace = bytes.contains(0x20)
        if !hasSpace, let scheme = schemeEnd(bytes), scheme > 0,
            bytes[..<scheme].allSatisfy({ isLetter($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E })
        {
            return .uri
        }
        if !hasSpace, let at = bytes.firstIndex(of: 0x40), at > 0, bytes[(at + 1)...].contains(0x2E),
            !bytes[(at + 1)...].contains(0x40)
        {
            return .email
        }
        if isIPv4(bytes) { return .ip }
        if bytes.contains(0x3A), bytes.count(where: { $0 == 0x3A }) >= 2,
            bytes.allSatisfy({ isHexDigit($0) || $0 == 0x3A })
        {
            return .ip
        }
        return nil
    }

    private static func isDigit(_ byte: UInt8) -> Bool { ASCII.isDigit(byte) }
    private static func isLetter(_ byte: UInt8) -> Bool { ASCII.isLetter(byte) }
    private static func isHexDigit(_ byte: UInt8) -> Bool { ASCII.isHexDigit(byte) }

    /// 8-4-4-4-12 hex digits, as `UUID(uuidString:)` accepts.
    private static func isUUID(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        for (index, byte) in bytes.enumerated() {
            let dash = index == 8 || index == 13 || index == 18 || index == 23
            if dash ? byte != 0x2D : !isHexDigit(byte) { return false }
        }
        return true
    }

    /// Where `://` starts, if it occurs.
    private static func schemeEnd(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard bytes.count >= 3 else { return nil }
        for index in 0...(bytes.count - 3) where bytes[index] == 0x3A {
            if bytes[index + 1] == 0x2F && bytes[index + 2] == 0x2F { return index }
        }
        return nil
    }

    /// Digits, optionally with one `.` between digits.
    static func isNumber(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        var digitsBefore = 0
        var digitsAfter = 0
        var dot = false
        for byte in bytes {
            if byte == 0x2E {
                if dot { return false }
                dot = true
            } else if isDigit(byte) {
                if dot { digitsAfter += 1 } else { digitsBefore += 1 }
            } else {
                return false
            }
        }
        return digitsBefore > 0 && (!dot || digitsAfter > 0)
    }

    static func isIPv4(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var octets = 0
        var value = 0
        var digits = 0
        for byte in bytes {
            if byte == 0x2E {
                guard digits > 0 else { return false }
                octets += 1
                value = 0
                digits = 0
            } else if isDigit(byte) {
                digits += 1
                value = value * 10 + Int(byte - 0x30)
                guard digits <= 3, value <= 255 else { return false }
            } else {
                return false
            }
        }
        return digits > 0 && octets == 3
    }
}

/// The JSON type of a value as the consumer sees it; a redaction marker stands for its type.
public enum JSONKind: String, Sendable, Hashable, Comparable, CaseIterable {
    case null, boolean, integer, number, string, array, object

    public static func of(_ value: JSONValue) -> JSONKind {
        if case .string(let text) = value, text.hasPrefix("<redacted:"), text.hasSuffix(">") {
            let name = text.dropFirst(10).dropLast().prefix { $0 != "~" }
            if let kind = JSONKind(rawValue: String(name)) { return kind }
        }
        return JSONKind(rawValue: JSONShape.typeName(value)) ?? .string
    }

    /// Integer is a kind of number: the consumer's parser reads both.
    public var compatibilityClass: JSONKind { self == .integer ? .number : self }

    public static func < (lhs: JSONKind, rhs: JSONKind) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// What the real service sent at one JSON path, over every sample of an endpoint.
public final class ShapeNode {
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

    /// The one format every string here had, if any (a fact about the samples, not yet a claim).
    public var consistentFormat: StringFormat? {
        guard stringCount > 0, formats.count == 1, let only = formats.keys.first else { return nil }
        return only
    }

    /// Distinct scalar values seen here; nil when there were too many to keep.
    public var distinctValues: Int? { values?.count }

    /// A format claim: every string had it, over enough samples.
    public func claimedFormat(_ thresholds: EvidenceThresholds) -> StringFormat? {
        guard stringCount >= thresholds.minSamples else { return nil }
        return consistentFormat
    }

    /// A small closed set of string values, when enough samples make it believable.
    public func closedSet(_ thresholds: EvidenceThresholds) -> Set<String>? {
        guard stringCount >= thresholds.enumSamples, consistentFormat == nil, let values,
            kinds.keys.allSatisfy({ $0 == .string || $0 == .null })
        else { return nil }
        let strings = values.keys.filter { $0.hasPrefix("\"") }
        guard !strings.isEmpty, strings.count <= 6, strings.count * 2 <= stringCount else { return nil }
        return Set(strings)
    }

    /// The value every sample had, when there were enough samples.
    public func stableValue(_ thresholds: EvidenceThresholds) -> String? {
        guard count >= max(2, thresholds.minSamples), let values, values.count == 1, let only = values.first,
            only.value == count
        else {
            return nil
        }
        return only.key
    }
}
