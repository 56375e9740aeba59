import DriftcheckCore
import DriftcheckReplay
import Foundation

/// gRPC server reflection (v1, then v1alpha), asked of a real upstream when recording starts:
/// its services and the files that describe them, as one FileDescriptorSet to store with the
/// recordings. The messages are written and read on the wire by hand; they are small.
public enum ServerReflection {
    static let paths = [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]

    /// The FileDescriptorSet of every service `url` (an `h2c://` or `https://` origin, reached
    /// as `reach` says) reflects, with the files they import; nil when it does not answer
    /// reflection.
    public static func descriptorSet(url: String, timeout: Double = 5, reach: CurlClient.Reach = .init()) -> Data? {
        let client = CurlClient(service: "reflection", baseURL: url, timeout: timeout, reach: reach)
        for path in paths {
            guard let services = try? ask(client, path, [listServices()]).flatMap(serviceNames), !services.isEmpty
            else { continue }
            let wanted = services.filter { !$0.hasPrefix("grpc.reflection.") }
            guard let answers = try? ask(client, path, wanted.map(fileContaining)) else { continue }
            var files: [Data] = []
            for answer in answers { files += fileDescriptors(answer).filter { !files.contains($0) } }
            guard !files.isEmpty else { continue }
            // FileDescriptorSet { repeated FileDescriptorProto file = 1; }
            var set = Data()
            for file in files { set += lengthDelimited(1, file) }
            return set
        }
        return nil
    }

    /// One call with `requests` as its messages; the answer's messages.
    static func ask(_ client: CurlClient, _ path: String, _ requests: [Data]) throws -> [Data] {
        var body = Data()
        for request in requests {
            body += [0] + withUnsafeBytes(of: UInt32(request.count).bigEndian, Array.init) + request
        }
        let response = try client.send(
            RecordedRequest(
                method: "POST", host: "", port: 0, path: path,
                headers: HeaderFields([("content-type", "application/grpc"), ("te", "trailers")]),
                body: CapturedBody(bytes: body)))
        guard GRPC.status(of: response) == 0, let messages = GRPC.messages(response.body.bytes) else { return [] }
        return messages.filter { !$0.compressed }.map(\.bytes)
    }

    // ServerReflectionRequest { string file_containing_symbol = 4; string list_services = 7; }
    static func listServices() -> Data { lengthDelimited(7, Data()) }
    static func fileContaining(_ symbol: String) -> Data { lengthDelimited(4, Data(symbol.utf8)) }

    // ServerReflectionResponse { FileDescriptorResponse file_descriptor_response = 4;
    //   ListServiceResponse list_services_response = 6; }
    static func serviceNames(_ answer: Data) -> [String] {
        guard let fields = ProtobufWire.fields(Array(answer), depth: 0) else { return [] }
        return fields.compactMap { number, value -> [String]? in
            guard number == 6, case .bytes(let list, _) = value,
                let services = ProtobufWire.fields(list, depth: 1)
            else { return nil }
            return services.compactMap { number, value in
                guard number == 1, case .bytes(let service, _) = value,
                    let nameField = ProtobufWire.fields(service, depth: 2)?.first(where: { $0.0 == 1 }),
                    case .bytes(let name, _) = nameField.1
                else { return nil }
                return String(decoding: name, as: UTF8.self)
            }
        }.flatMap { $0 }
    }

    static func fileDescriptors(_ answer: Data) -> [Data] {
        guard let fields = ProtobufWire.fields(Array(answer), depth: 0) else { return [] }
        return fields.compactMap { number, value -> [Data]? in
            guard number == 4, case .bytes(let response, _) = value,
                let files = ProtobufWire.fields(response, depth: 1)
            else { return nil }
            return files.compactMap { number, value in
                guard number == 1, case .bytes(let file, _) = value else { return nil }
                return Data(file)
            }
        }.flatMap { $0 }
    }

    static func lengthDelimited(_ number: Int, _ bytes: Data) -> Data {
        var out = varint(UInt64(number << 3 | 2))
        out += varint(UInt64(bytes.count))
        return out + bytes
    }

    static func varint(_ value: UInt64) -> Data {
        var value = value
        var out = Data()
        repeat {
            out.append(UInt8(value & 0x7F) | (value > 0x7F ? 0x80 : 0))
            value >>= 7
        } while value > 0
        return out
    }
}
