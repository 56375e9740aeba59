import Foundation

/// The visible shape of a redacted value: a known prefix (`sk_test_`, `ghp_`, `s-`) and runs of
/// character classes with their lengths, e.g. `sk_test_~l4d20`. It says what kind of token was
/// there, never which one, so a replayed stand-in still satisfies a mock's `matches` pattern.
public enum RedactionShape {
    /// Punctuation kept as itself; anything else that is not a letter or digit becomes `o`.
    static let literals: Set<UInt8> = Set(".-_:+/=".utf8)

    public static func describes(_ value: String) -> Bool { !value.isEmpty && value.utf8.count <= 65_536 }

    /// `PREFIX~RUNS`.
    public static func of(_ value: String) -> String {
        let bytes = Array(value.utf8)
        let prefixLength = prefix(bytes)
        let rest = bytes[prefixLength...]
        var runs: [(UInt8, Int)] = []
        for byte in rest {
            let kind = classOf(byte)
            if let last = runs.last, last.0 == kind {
                runs[runs.count - 1].1 += 1
            } else {
                runs.append((kind, 1))
            }
        }
        // Mixed-case tokens alternate classes every few characters: one run per alphanumeric stretch.
        if runs.count > 8 { runs = merged(runs) }
        var text = String(decoding: bytes[..<prefixLength], as: UTF8.self) + "~"
        for (kind, count) in runs {
            text.append(Character(Unicode.Scalar(kind)))
            if count > 1 { text += String(count) }
        }
        return text
    }

    /// Short letter groups followed by `-` or `_`, at most two and eight characters (`sk_test_`,
    /// `ghp_`, `xoxb-`): a token's type, not its secret. Kept only when a long enough remainder
    /// follows, so a password like `abc-12345` keeps nothing.
    static func prefix(_ bytes: [UInt8]) -> Int {
        var end = 0
        var groups = 0
        var index = 0
        while groups < 2 {
            var letters = 0
            while index < bytes.count, ASCII.isLetter(bytes[index]), letters <= 5 {
                index += 1
                letters += 1
            }
            guard letters > 0, letters <= 5, index < bytes.count, bytes[index] == 0x2D || bytes[index] == 0x5F
            else { break }
            index += 1
            groups += 1
            guard index <= 8, bytes.count - index >= 8 else { break }
            end = index
        }
        return end
    }

    static func classOf(_ byte: UInt8) -> UInt8 {
        if ASCII.isDigit(byte) { return UInt8(ascii: "d") }
        if byte >= 0x61 && byte <= 0x7A { return UInt8(ascii: "l") }
        if byte >= 0x41 && byte <= 0x5A { return UInt8(ascii: "u") }
        return literals.contains(byte) ? byte : UInt8(ascii: "o")
    }

    static func merged(_ runs: [(UInt8, Int)]) -> [(UInt8, Int)] {
        let alphanumeric: Set<UInt8> = Set("dlu".utf8)
        var result: [(UInt8, Int)] = []
        var kinds: Set<UInt8> = []
        var count = 0
        func flush() {
            guard count > 0 else { return }
            let kind: UInt8
            switch kinds {
            case [UInt8(ascii: "d")], [UInt8(ascii: "l")], [UInt8(ascii: "u")]: kind = kinds.first!
            case [UInt8(ascii: "d"), UInt8(ascii: "l")]: kind = UInt8(ascii: "a")
            case [UInt8(ascii: "d"), UInt8(ascii: "u")]: kind = UInt8(ascii: "A")
            default: kind = UInt8(ascii: "m")
            }
            result.append((kind, count))
            kinds = []
            count = 0
        }
        for (kind, n) in runs {
            if alphanumeric.contains(kind) {
                kinds.insert(kind)
                count += n
            } else {
                flush()
                result.append((kind, n))
            }
        }
        flush()
        return result
    }

    /// A value of the described shape: the prefix, then a character of each run's class.
    public static func standIn(_ shape: Substring) -> String {
        guard let tilde = shape.firstIndex(of: "~") else { return "redacted" }
        var text = String(shape[..<tilde])
        var bytes = Array(shape[shape.index(after: tilde)...].utf8)[...]
        while let kind = bytes.popFirst() {
            var count = 0
            while let digit = bytes.first, ASCII.isDigit(digit) {
                count = min(count * 10 + Int(digit - 0x30), 65_536)
                bytes.removeFirst()
            }
            let character: Character
            switch kind {
            case UInt8(ascii: "d"): character = "1"
            case UInt8(ascii: "l"), UInt8(ascii: "a"), UInt8(ascii: "m"): character = "a"
            case UInt8(ascii: "u"), UInt8(ascii: "A"): character = "A"
            case UInt8(ascii: "o"): character = "_"
            default: character = Character(Unicode.Scalar(kind))
            }
            text += String(repeating: character, count: max(count, 1))
        }
        return text.isEmpty ? "redacted" : text
    }
}

/// Stand-ins for redacted values, sent when a recorded request is replayed to a mock over HTTP:
/// the mock sees a value of the recorded shape instead of a marker its matchers would refuse.
public enum StandIns {
    /// `text` with every redaction marker replaced by a stand-in of its shape.
    public static func text(_ text: String) -> String {
        guard RedactionPolicy.containsMarker(text) else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "<redacted") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: ">") else {
                rest = rest[start.lowerBound...]
                break
            }
            result += value(of: rest[start.lowerBound...end])
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }

    /// The stand-in text for one marker (`<redacted~s-~d5>` → `s-11111`).
    static func value(of marker: Substring) -> String {
        let inner = marker.dropFirst("<redacted".count).dropLast()
        if inner.hasPrefix("~") { return RedactionShape.standIn(inner.dropFirst()) }
        if inner.hasPrefix(":string~") { return RedactionShape.standIn(inner.dropFirst(":string~".count)) }
        return "redacted"
    }

    /// A JSON value in place of a typed marker, so the body keeps its types.
    public static func json(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let text) where RedactionPolicy.isMarker(text):
            switch JSONKind.of(value) {
            case .integer: return .number("1")
            case .number: return .number("1.5")
            case .boolean: return .bool(true)
            case .null: return .null
            case .array: return .array([])
            case .object: return .object([])
            case .string: return .string(self.value(of: Substring(text)))
            }
        case .string(let text): return .string(self.text(text))
        case .object(let members): return .object(members.map { ($0.key, json($0.value)) })
        case .array(let items): return .array(items.map(json))
        default: return value
        }
    }

    /// The request as it is replayed: markers in the query, headers and body replaced.
    public static func request(_ request: RecordedRequest) -> RecordedRequest {
        var copy = request
        copy.query = request.query.map(text)
        copy.headers = HeaderFields(fields: request.headers.fields.map { .init($0.name, text($0.value)) })
        let bytes = request.body.bytes
        guard !bytes.isEmpty, bytes.range(of: Data("<redacted".utf8)) != nil else { return copy }
        let replaced: Data
        if MediaType.isJSON(MediaType.of(request.headers)) || bytes.first == 0x7B || bytes.first == 0x5B,
            let parsed = try? JSONValue.parse(bytes)
        {
            replaced = Data(json(parsed).serialized().utf8)
        } else {
            replaced = Data(text(String(decoding: bytes, as: UTF8.self)).utf8)
        }
        copy.body = request.body.replacingBytes(replaced)
        return copy
    }

    /// Where the request carried redacted values, by part (`header Authorization`, `cookie session`…).
    public static func redactedParts(_ request: RecordedRequest) -> [String] {
        var parts: [String] = []
        for field in request.headers.fields where RedactionPolicy.containsMarker(field.value) {
            if ASCII.equalsIgnoringCase(field.name, "cookie") {
                for (name, value) in Cookies.pairs([field.value]) where RedactionPolicy.containsMarker(value) {
                    parts.append("cookie \(name)")
                }
            } else {
                parts.append("header \(field.name)")
            }
        }
        for pair in (request.query ?? "").split(separator: "&") where RedactionPolicy.containsMarker(pair) {
            parts.append("query \(pair.prefix { $0 != "=" })")
        }
        if request.body.bytes.range(of: Data("<redacted".utf8)) != nil { parts.append("body") }
        return parts
    }
}
