/// Allocation-free text helpers for protocol tokens (header names, media types, encodings),
/// which are ASCII by definition. Foundation's equivalents bridge through NSString and showed
/// in the recorder's profiles. Inlinable so that callers in other modules get specialised code.
public enum ASCII {
    /// ASCII case-insensitive equality.
    @inlinable public static func equalsIgnoringCase<A: StringProtocol, B: StringProtocol>(_ a: A, _ b: B) -> Bool {
        var left = a.utf8.makeIterator()
        var right = b.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil): return true
            case (let x?, let y?):
                if x != y && (x | 0x20 != y | 0x20 || !(0x61...0x7A).contains(x | 0x20)) { return false }
            default: return false
            }
        }
    }

    /// `text` without leading and trailing spaces, tabs, CR and LF.
    @inlinable public static func trimmed(_ text: Substring) -> Substring {
        let utf8 = text.utf8
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end, isSpace(utf8[start]) { start = utf8.index(after: start) }
        while end > start, isSpace(utf8[utf8.index(before: end)]) { end = utf8.index(before: end) }
        return text[start..<end]
    }

    /// `text` without leading and trailing spaces, tabs, CR and LF.
    @inlinable public static func trimmed(_ text: String) -> Substring { trimmed(text[...]) }

    /// `text` with A–Z lowered; other bytes are kept as they are.
    @inlinable public static func lowercased<S: StringProtocol>(_ text: S) -> String {
        if !text.utf8.contains(where: { (0x41...0x5A).contains($0) }) { return String(text) }
        let count = text.utf8.count
        return String(unsafeUninitializedCapacity: count) { buffer in
            var index = 0
            for byte in text.utf8 {
                buffer[index] = (0x41...0x5A).contains(byte) ? byte | 0x20 : byte
                index += 1
            }
            return count
        }
    }

    /// Whether `fragment`'s bytes occur in `text`; Foundation's `contains` goes through NSString.
    public static func contains(_ text: String, _ fragment: String) -> Bool {
        var text = text
        var fragment = fragment
        return text.withUTF8 { haystack in
            fragment.withUTF8 { needle in
                guard !needle.isEmpty else { return true }
                guard haystack.count >= needle.count else { return false }
                for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
                    var index = 1
                    while index < needle.count && haystack[start + index] == needle[index] { index += 1 }
                    if index == needle.count { return true }
                }
                return false
            }
        }
    }

    public static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    public static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A }
    public static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || ((byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x66)
    }

    @usableFromInline static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }
}

/// HTTP field-name rules (RFC 9110 tokens).
public enum HTTPToken {
    /// Whether `name` is a valid header name, and `value` free of CR, LF and NUL.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { byte in
                ASCII.isDigit(byte) || ASCII.isLetter(byte) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
    }

    public static func isValidValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }
    }
}

/// Messages that must stay on one line whatever the files they quote hold.
public enum OneLine {
    /// `text` with control characters shown escaped (`\n`, `\u{1b}`…).
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var line = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                line += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: line.unicodeScalars.append(scalar)
            }
        }
        return line
    }
}
