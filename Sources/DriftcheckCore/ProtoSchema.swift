import Foundation

/// What protobuf descriptors say about messages, enums and methods: enough to decode the wire
/// format by protobuf's JSON mapping (lowerCamel names, enums by name, 64-bit integers as
/// strings, proto3 defaults for absent scalars). Built from FileDescriptorSets by an edge
/// module; pure here.
public struct ProtoSchema: Sendable {
    /// `FieldDescriptorProto.Type`, by its numbers.
    public enum FieldType: Int, Sendable {
        case double = 1
        case float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes, uint32,
            enumeration, sfixed32, sfixed64, sint32, sint64
    }

    public struct Field: Sendable {
        public var number: Int
        /// The JSON name (`priceCents`).
        public var name: String
        public var type: FieldType
        /// The full name of a message or enum type, with its leading dot.
        public var typeName: String?
        public var repeated: Bool
        /// A proto3 singular scalar outside any oneof: absent means its zero value.
        public var implicitPresence: Bool
        /// The name in the .proto file (`price_cents`), which JSON parsers accept as well.
        public var protoName: String?

        public init(
            number: Int, name: String, type: FieldType, typeName: String?, repeated: Bool, implicitPresence: Bool,
            protoName: String? = nil
        ) {
            self.number = number
            self.name = name
            self.protoName = protoName
            self.type = type
            self.typeName = typeName
            self.repeated = repeated
            self.implicitPresence = implicitPresence
        }
    }

    public struct Message: Sendable {
        public var fields: [Field]
        /// A map's entry type: decoded as an object keyed by its `key` field.
        public var isMapEntry: Bool

        public init(fields: [Field], isMapEntry: Bool) {
            self.fields = fields
            self.isMapEntry = isMapEntry
        }
    }

    /// By full name with the leading dot: `.shop.v1.Recommendation`.
    public var messages: [String: Message] = [:]
    public var enums: [String: [Int: String]] = [:]
    /// `/package.Service/Method` → input and output message types.
    public var methods: [String: (input: String, output: String)] = [:]

    public init() {}

    public var isEmpty: Bool { methods.isEmpty }

    /// Another schema's types and methods added to these.
    public mutating func merge(_ other: ProtoSchema) {
        messages.merge(other.messages) { mine, _ in mine }
        enums.merge(other.enums) { mine, _ in mine }
        methods.merge(other.methods) { mine, _ in mine }
    }

    /// One message of type `typeName` as JSON; nil when the bytes are not such a message.
    /// `printingDefaults` false prints as protobuf's JSON printers do by default: fields at their
    /// zero value, empty lists and maps, and fields the schema does not know are left out (what
    /// WireMock's gRPC extension shows request matchers). True, every field is there, as the
    /// differ compares messages.
    public func json(_ bytes: Data, type typeName: String, printingDefaults: Bool = true) -> JSONValue? {
        guard let message = messages[typeName] else { return ProtobufWire.json(bytes) }
        return decode(Array(bytes), message, depth: 0, defaults: printingDefaults)
    }

    func decode(_ bytes: [UInt8], _ message: Message, depth: Int, defaults: Bool) -> JSONValue? {
        guard depth < ProtobufWire.maximumDepth, let wire = ProtobufWire.fields(bytes, depth: depth) else {
            return nil
        }
        var byNumber: [Int: [ProtobufWire.Value]] = [:]
        var order: [Int] = []
        for (number, value) in wire {
            if byNumber[number] == nil { order.append(number) }
            byNumber[number, default: []].append(value)
        }
        var members: [(key: String, value: JSONValue)] = []
        let known = Dictionary(message.fields.map { ($0.number, $0) }, uniquingKeysWith: { first, _ in first })
        for field in message.fields {
            guard let values = byNumber[field.number] else {
                guard defaults else { continue }
                if field.repeated {
                    members.append((field.name, isMap(field) ? .object([]) : .array([])))
                } else if field.implicitPresence, let zero = zeroValue(field) {
                    members.append((field.name, zero))
                }
                continue
            }
            let decoded = values.flatMap { scalars($0, field) }.map {
                json($0, field, depth: depth, defaults: defaults)
            }
            if isMap(field) {
                members.append((field.name, .object(decoded.compactMap(mapPair))))
            } else if field.repeated {
                members.append((field.name, .array(decoded)))
            } else {
                // The last occurrence wins, as protobuf parsers do.
                let value = decoded.last ?? .null
                if !defaults, field.implicitPresence, isZero(value, field) { continue }
                members.append((field.name, value))
            }
        }
        // Fields the schema does not know stay visible under their numbers.
        for number in order where known[number] == nil && defaults {
            let values = byNumber[number]!.map(ProtobufWire.json)
            members.append(("#\(number)", values.count == 1 ? values[0] : .array(values)))
        }
        return .object(members)
    }

    private func isMap(_ field: Field) -> Bool {
        field.repeated && field.type == .message && field.typeName.flatMap { messages[$0] }?.isMapEntry == true
    }

    private func mapPair(_ entry: JSONValue) -> (key: String, value: JSONValue)? {
        guard case .object(let members) = entry else { return nil }
        let key = members.first { $0.key == "key" }?.value
        let value = members.first { $0.key == "value" }?.value ?? .null
        switch key {
        case .string(let text)?: return (text, value)
        case .number(let text)?: return (text, value)
        case .bool(let flag)?: return (flag ? "true" : "false", value)
        default: return nil
        }
    }

    /// Packed repeated scalars arrive as one length-delimited value holding them all.
    private func scalars(_ value: ProtobufWire.Value, _ field: Field) -> [ProtobufWire.Value] {
        guard case .bytes(let bytes, _) = value, field.repeated,
            ![.string, .bytes, .message, .group].contains(field.type)
        else { return [value] }
        var values: [ProtobufWire.Value] = []
        var index = 0
        switch field.type {
        case .double, .fixed64, .sfixed64:
            while index + 8 <= bytes.count {
                values.append(.fixed64(littleEndian(bytes[index..<index + 8])))
                index += 8
            }
        case .float, .fixed32, .sfixed32:
            while index + 4 <= bytes.count {
                values.append(.fixed32(UInt32(littleEndian(bytes[index..<index + 4]))))
                index += 4
            }
        default:
            var value: UInt64 = 0
            var shift: UInt64 = 0
            for byte in bytes {
                value |= UInt64(byte & 0x7F) << min(shift, 63)
                shift += 7
                if byte & 0x80 == 0 {
                    values.append(.varint(value))
                    value = 0
                    shift = 0
                }
            }
        }
        return values
    }

    private func littleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    private func json(_ value: ProtobufWire.Value, _ field: Field, depth: Int, defaults: Bool) -> JSONValue {
        switch (field.type, value) {
        case (.double, .fixed64(let bits)): return number(Double(bitPattern: bits))
        case (.float, .fixed32(let bits)): return number(Double(Float(bitPattern: bits)))
        case (.int64, .varint(let raw)), (.sfixed64, .fixed64(let raw)): return .string(String(Int64(bitPattern: raw)))
        case (.uint64, .varint(let raw)), (.fixed64, .fixed64(let raw)): return .string(String(raw))
        case (.sint64, .varint(let raw)): return .string(String(zigzag(raw)))
        case (.int32, .varint(let raw)): return .number(String(Int32(truncatingIfNeeded: raw)))
        case (.uint32, .varint(let raw)): return .number(String(UInt32(truncatingIfNeeded: raw)))
        case (.sint32, .varint(let raw)): return .number(String(Int32(truncatingIfNeeded: zigzag(raw))))
        case (.fixed32, .fixed32(let raw)): return .number(String(raw))
        case (.sfixed32, .fixed32(let raw)): return .number(String(Int32(bitPattern: raw)))
        case (.bool, .varint(let raw)): return .bool(raw != 0)
        case (.enumeration, .varint(let raw)):
            let number = Int(Int32(truncatingIfNeeded: raw))
            return field.typeName.flatMap { enums[$0]?[number] }.map(JSONValue.string) ?? .number(String(number))
        case (.string, .bytes(let bytes, _)): return .string(String(decoding: bytes, as: UTF8.self))
        case (.bytes, .bytes(let bytes, _)): return .string(Data(bytes).base64EncodedString())
        case (.message, .bytes(let bytes, _)):
            guard let typeName = field.typeName, let nested = messages[typeName] else {
                return ProtobufWire.json(.bytes(bytes, depth: depth + 1))
            }
            return decode(bytes, nested, depth: depth + 1, defaults: defaults) ?? .null
        default:
            // The wire type does not fit the declared type: shown as it came.
            return ProtobufWire.json(value)
        }
    }

    private func zigzag(_ raw: UInt64) -> Int64 { Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1) }

    private func number(_ value: Double) -> JSONValue {
        value.isFinite ? .number(String(value)) : .string(value.isNaN ? "NaN" : value > 0 ? "Infinity" : "-Infinity")
    }

    /// A decoded scalar of `field` at its proto3 zero value.
    private func isZero(_ value: JSONValue, _ field: Field) -> Bool {
        if case .number(let text) = value { return Double(text) == 0 }
        return value == zeroValue(field)
    }

    private func zeroValue(_ field: Field) -> JSONValue? {
        switch field.type {
        case .string, .bytes: return .string("")
        case .bool: return .bool(false)
        case .int64, .uint64, .sint64, .fixed64, .sfixed64: return .string("0")
        case .double, .float, .int32, .uint32, .sint32, .fixed32, .sfixed32: return .number("0")
        case .enumeration: return field.typeName.flatMap { enums[$0]?[0] }.map(JSONValue.string) ?? .number("0")
        case .message, .group: return nil
        }
    }
}
