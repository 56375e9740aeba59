import DriftcheckCore
import Foundation
import SwiftProtobuf

/// Why a descriptor set could not be used.
public struct DescriptorSetError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// FileDescriptorSets (`protoc --include_imports --descriptor_set_out`, `buf build -o`) read
/// into the core's `ProtoSchema`.
public enum DescriptorSets {
    /// The schema `bytes` describe; throws when they are not a FileDescriptorSet with a service.
    public static func schema(_ bytes: Data) throws -> ProtoSchema {
        let set: Google_Protobuf_FileDescriptorSet
        do {
            set = try Google_Protobuf_FileDescriptorSet(serializedBytes: bytes)
        } catch {
            throw DescriptorSetError(description: "not a FileDescriptorSet (\(error))")
        }
        guard !set.file.isEmpty else { throw DescriptorSetError(description: "a FileDescriptorSet with no files") }
        var schema = ProtoSchema()
        for file in set.file {
            let package = file.package.isEmpty ? "" : "." + file.package
            let proto3 = file.syntax == "proto3" || file.syntax == "editions"
            for message in file.messageType { add(message, scope: package, proto3: proto3, to: &schema) }
            for enumeration in file.enumType { add(enumeration, scope: package, to: &schema) }
            for service in file.service {
                let serviceName = (file.package.isEmpty ? "" : file.package + ".") + service.name
                for method in service.method {
                    schema.methods["/\(serviceName)/\(method.name)"] = (method.inputType, method.outputType)
                }
            }
        }
        guard !schema.methods.isEmpty else {
            throw DescriptorSetError(description: "no service in it (was it built from the right .proto files?)")
        }
        return schema
    }

    /// Every set in `sets` merged; sets that do not read are skipped.
    public static func schema(merging sets: [Data]) -> ProtoSchema? {
        var merged = ProtoSchema()
        for bytes in sets { if let schema = try? schema(bytes) { merged.merge(schema) } }
        return merged.isEmpty ? nil : merged
    }

    private static func add(
        _ message: Google_Protobuf_DescriptorProto, scope: String, proto3: Bool, to schema: inout ProtoSchema
    ) {
        let name = scope + "." + message.name
        schema.messages[name] = ProtoSchema.Message(
            fields: message.field.compactMap { field in
                guard let type = ProtoSchema.FieldType(rawValue: field.type.rawValue) else { return nil }
                let repeated = field.label == .repeated
                return ProtoSchema.Field(
                    number: Int(field.number), name: field.hasJsonName ? field.jsonName : lowerCamel(field.name),
                    type: type, typeName: field.typeName.isEmpty ? nil : field.typeName, repeated: repeated,
                    implicitPresence: proto3 && !repeated && !field.hasOneofIndex && !field.proto3Optional
                        && type != .message, protoName: field.name)
            },
            isMapEntry: message.options.mapEntry)
        for nested in message.nestedType { add(nested, scope: name, proto3: proto3, to: &schema) }
        for enumeration in message.enumType { add(enumeration, scope: name, to: &schema) }
    }

    private static func add(
        _ enumeration: Google_Protobuf_EnumDescriptorProto, scope: String, to schema: inout ProtoSchema
    ) {
        schema.enums[scope + "." + enumeration.name] = Dictionary(
            enumeration.value.map { (Int($0.number), $0.name) }, uniquingKeysWith: { first, _ in first })
    }

    /// protoc's JSON name when a descriptor lacks one: `price_cents` → `priceCents`.
    static func lowerCamel(_ name: String) -> String {
        var out = ""
        var upper = false
        for character in name {
            if character == "_" {
                upper = true
            } else {
                out.append(upper ? Character(character.uppercased()) : character)
                upper = false
            }
        }
        return out
    }
}
