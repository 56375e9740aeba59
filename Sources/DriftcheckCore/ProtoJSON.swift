import Foundation

// Protobuf's JSON mapping read the way protobuf-java's `JsonFormat.parser()` reads it: what
// WireMock's gRPC extension does with a stub's JSON answer before a client sees it. A stub is
// compared as the message the client would receive, not as the JSON someone wrote.
extension ProtoSchema {
    /// Why a JSON document is not a message of a type, in the words of protobuf's JSON parser.
    public struct JSONParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public var description: String
    }

    /// `json` as a message of `typeName` on the wire. Fields go by their JSON or proto name; a
    /// name the message lacks, a value of the wrong kind, or an enum name the type lacks is
    /// an error (the parser is not told to ignore unknown fields); `null` leaves a field unset.
    public func message(fromJSON json: JSONValue, type typeName: String) throws(JSONParseError) -> Data {
        var out: [UInt8] = []
        try encode(json, typeName: typeName, depth: 0, into: &out)
        return Data(out)
    }

    private func encode(_ json: JSONValue, typeName: String, depth: Int, into out: inout [UInt8])
        throws(JSONParseError)
    {
        guard depth < ProtobufWire.maximumDepth else { throw JSONParseError(description: "nested too deeply") }
        let shown = typeName.hasPrefix(".") ? String(typeName.dropFirst()) : typeName
        guard let message = messages[typeName] else {
            throw JSONParseError(description: "no message type \(shown) in the descriptors")
        }
        guard case .object(let members) = json else {
            throw JSONParseError(description: "Expect message object but got: \(json.serialized())")
        }
        var seen: Set<Int> = []
        for (key, value) in members {
            guard let field = message.fields.first(where: { $0.name == key || $0.protoName == key }) else {
                throw JSONParseError(description: "Cannot find field: \(key) in message \(shown)")
            }
            guard seen.insert(field.number).inserted else {
                throw JSONParseError(description: "Field \(shown).\(field.protoName ?? key) has already been set.")
            }
            if case .null = value { continue }
            if field.repeated, let entryType = field.typeName, messages[entryType]?.isMapEntry == true {
                guard case .object(let entries) = value else {
                    throw JSONParseError(description: "Expect a map object but found: \(value.serialized())")
                }
                let entry = messages[entryType]!
                for (mapKey, mapValue) in entries {
                    var bytes: [UInt8] = []
                    if let keyField = entry.fields.first(where: { $0.number == 1 }) {
                        try encode(.string(mapKey), as: keyField, depth: depth + 1, into: &bytes, mapKey: true)
                    }
                    if let valueField = entry.fields.first(where: { $0.number == 2 }) {
                        try encode(mapValue, as: valueField, depth: depth + 1, into: &bytes)
                    }
                    Self.key(field.number, wireType: 2, into: &out)
                    Self.varint(UInt64(bytes.count), into: &out)
                    out += bytes
                }
            } else if field.repeated {
                guard case .array(let items) = value else {
                    throw JSONParseError(description: "Expect an array but found: \(value.serialized())")
                }
                for item in items { try encode(item, as: field, depth: depth + 1, into: &out) }
            } else {
                try encode(value, as: field, depth: depth + 1, into: &out)
            }
        }
    }

    /// One value of `field`, with its key.
    private func encode(
        _ value: JSONValue, as field: Field, depth: Int, into out: inout [UInt8], mapKey: Bool = false
    ) throws(JSONParseError) {
        func invalid(_ kind: String) -> JSONParseError {
            JSONParseError(description: "Not \(kind) value: \(value.serialized())")
        }
        switch field.type {
        case .int32, .sint32, .sfixed32:
            guard let number = Self.integer(value, in: Int64(Int32.min)...Int64(Int32.max)) else {
                throw invalid("an int32")
            }
            switch field.type {
            case .sint32: Self.scalar(field.number, varint: UInt64(UInt32(bitPattern: Int32(number).zigzag)), &out)
            case .sfixed32: Self.fixed32(field.number, UInt32(bitPattern: Int32(number)), &out)
            default: Self.scalar(field.number, varint: UInt64(bitPattern: number), &out)
            }
        case .uint32, .fixed32:
            guard let number = Self.integer(value, in: 0...Int64(UInt32.max)) else { throw invalid("a uint32") }
            if field.type == .fixed32 {
                Self.fixed32(field.number, UInt32(number), &out)
            } else {
                Self.scalar(field.number, varint: UInt64(number), &out)
            }
        case .int64, .sint64, .sfixed64:
            guard let number = Self.integer(value, in: Int64.min...Int64.max) else { throw invalid("an int64") }
            switch field.type {
            case .sint64: Self.scalar(field.number, varint: UInt64(bitPattern: number.zigzag), &out)
            case .sfixed64: Self.fixed64(field.number, UInt64(bitPattern: number), &out)
            default: Self.scalar(field.number, varint: UInt64(bitPattern: number), &out)
            }
        case .uint64, .fixed64:
            guard let number = Self.unsigned(value) else { throw invalid("a uint64") }
            if field.type == .fixed64 {
                Self.fixed64(field.number, number, &out)
            } else {
                Self.scalar(field.number, varint: number, &out)
            }
        case .bool:
            switch value {
            case .bool(let flag): Self.scalar(field.number, varint: flag ? 1 : 0, &out)
            case .string("true") where mapKey: Self.scalar(field.number, varint: 1, &out)
            case .string("false") where mapKey: Self.scalar(field.number, varint: 0, &out)
            default: throw invalid("a bool")
            }
        case .double, .float:
            guard let number = Self.floating(value) else { throw invalid("a double") }
            if field.type == .float {
                guard number.isNaN || number.isInfinite || abs(number) <= Double(Float.greatestFiniteMagnitude) else {
                    throw JSONParseError(description: "Out of range float value: \(value.serialized())")
                }
                Self.fixed32(field.number, Float(number).bitPattern, &out)
            } else {
                Self.fixed64(field.number, number.bitPattern, &out)
            }
        case .string:
            guard case .string(let text) = value else { throw invalid("a string") }
            Self.lengthDelimited(field.number, Array(text.utf8), &out)
        case .bytes:
            guard case .string(let text) = value, let bytes = Self.base64(text) else { throw invalid("a bytes") }
            Self.lengthDelimited(field.number, Array(bytes), &out)
        case .enumeration:
            let values = field.typeName.flatMap { enums[$0] } ?? [:]
            switch value {
            case .string(let name):
                guard let number = values.first(where: { $0.value == name })?.key else {
                    let type = field.typeName.map { $0.hasPrefix(".") ? String($0.dropFirst()) : $0 } ?? "?"
                    throw JSONParseError(description: "Invalid enum value: \(name) for enum type: \(type)")
                }
                Self.scalar(field.number, varint: UInt64(bitPattern: Int64(number)), &out)
            case .number:
                guard let number = Self.integer(value, in: Int64(Int32.min)...Int64(Int32.max)) else {
                    throw invalid("an enum")
                }
                Self.scalar(field.number, varint: UInt64(bitPattern: number), &out)
            default:
                throw invalid("an enum")
            }
        case .message:
            var bytes: [UInt8] = []
            try encode(value, typeName: field.typeName ?? "", depth: depth, into: &bytes)
            Self.lengthDelimited(field.number, bytes, &out)
        case .group:
            throw JSONParseError(description: "groups are not supported")
        }
    }

    // MARK: JSON values as protobuf's parser reads them

    /// An integral number or a string holding one (`"12"`, `1.0`, `"1e2"`), within `range`.
    static func integer(_ value: JSONValue, in range: ClosedRange<Int64>) -> Int64? {
        let text: String
        switch value {
        case .number(let digits): text = digits
        case .string(let digits): text = digits
        default: return nil
        }
        if let exact = Int64(text) { return range.contains(exact) ? exact : nil }
        // `1.0` and `1e2` are integers to protobuf's parser; `1.5` is not.
        guard let number = Double(text), number.isFinite, number.rounded() == number,
            let exact = Int64(exactly: number), range.contains(exact)
        else { return nil }
        return exact
    }

    static func unsigned(_ value: JSONValue) -> UInt64? {
        switch value {
        case .number(let digits), .string(let digits):
            if let exact = UInt64(digits) { return exact }
            return integer(value, in: 0...Int64.max).map(UInt64.init)
        default: return nil
        }
    }

    static func floating(_ value: JSONValue) -> Double? {
        switch value {
        case .number(let digits): return Double(digits)
        case .string("NaN"): return .nan
        case .string("Infinity"): return .infinity
        case .string("-Infinity"): return -.infinity
        case .string(let digits): return Double(digits).flatMap { $0.isFinite ? $0 : nil }
        default: return nil
        }
    }

    /// Standard or URL-safe base64, padded or not.
    static func base64(_ text: String) -> Data? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard)
    }

    // MARK: The wire

    static func key(_ number: Int, wireType: UInt64, into out: inout [UInt8]) {
        varint(UInt64(number) << 3 | wireType, into: &out)
    }

    static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    static func scalar(_ number: Int, varint value: UInt64, _ out: inout [UInt8]) {
        key(number, wireType: 0, into: &out)
        varint(value, into: &out)
    }

    static func fixed32(_ number: Int, _ value: UInt32, _ out: inout [UInt8]) {
        key(number, wireType: 5, into: &out)
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    static func fixed64(_ number: Int, _ value: UInt64, _ out: inout [UInt8]) {
        key(number, wireType: 1, into: &out)
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    static func lengthDelimited(_ number: Int, _ bytes: [UInt8], _ out: inout [UInt8]) {
        key(number, wireType: 2, into: &out)
        varint(UInt64(bytes.count), into: &out)
        out += bytes
    }
}

extension Int32 {
    fileprivate var zigzag: Int32 { (self << 1) ^ (self >> 31) }
}

extension Int64 {
    fileprivate var zigzag: Int64 { (self << 1) ^ (self >> 63) }
}
