import Foundation

/// The syntaxes `telepresence intercept --env-file FILE --env-syntax SYNTAX` writes (and
/// `--env-json`), read back exactly as Telepresence quotes them.
public enum EnvSyntax: String, Sendable, CaseIterable {
    case docker, compose, sh
    case shExport = "sh:export"
    case csh
    case cshExport = "csh:export"
    case ps
    case psExport = "ps:export"
    case cmd, json

    /// The syntax a file's text is written in, judged from its first entry.
    public static func detect(_ text: String) -> EnvSyntax {
        let trimmed = text.drop { $0.isWhitespace }
        if trimmed.hasPrefix("{") { return .json }
        let first =
            trimmed.split(whereSeparator: \.isNewline).first { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
            ?? ""
        if first.hasPrefix("export ") { return .shExport }
        if first.hasPrefix("setenv ") { return .cshExport }
        if first.hasPrefix("$Env:") { return .ps }
        if first.hasPrefix("[Environment]::SetEnvironmentVariable(") { return .psExport }
        // `set K=V`: csh quotes like sh, cmd never quotes; read as csh, which leaves a plain value as it is.
        if first.hasPrefix("set ") { return .csh }
        // Plain `K=V` lines: quoted values mean a shell or compose file, else docker's raw values.
        let values: [Substring] = text.split(separator: "\n").compactMap { line in
            line.firstIndex(of: "=").map { line[line.index(after: $0)...] }
        }
        if values.contains(where: { $0.hasPrefix("\"") }) { return .compose }
        if values.contains(where: { $0.hasPrefix("'") || $0.contains("\\'") }) { return .sh }
        return .docker
    }
}

/// Reads environment files: every Telepresence syntax, and the `KEY=VALUE` files docker takes.
public enum EnvFile {
    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
        public init(line: Int, reason: String) {
            self.line = line
            self.reason = reason
        }
    }

    /// The variables in `text`, in file order; `syntax` nil detects it from the content.
    public static func parse(_ text: String, syntax: EnvSyntax? = nil) throws(ParseError) -> [(String, String)] {
        var reader = Reader(text)
        switch syntax ?? EnvSyntax.detect(text) {
        case .json: return try json(text)
        case .docker: return try reader.lines(prefix: "", value: .raw)
        case .cmd: return try reader.lines(prefix: "set ", value: .raw)
        case .compose: return try reader.lines(prefix: "", value: .compose)
        case .sh: return try reader.lines(prefix: "", value: .shell)
        case .shExport: return try reader.lines(prefix: "export ", value: .shell)
        case .csh: return try reader.lines(prefix: "set ", value: .shell)
        case .cshExport: return try reader.lines(prefix: "setenv ", separator: " ", value: .shell)
        case .ps: return try reader.lines(prefix: "$Env:", value: .powerShell)
        case .psExport: return try reader.powerShellExports()
        }
    }

    static func json(_ text: String) throws(ParseError) -> [(String, String)] {
        guard case .object(let members) = try? JSONValue.parse(Data(text.utf8)) else {
            throw ParseError(line: 1, reason: "expected a JSON object of strings")
        }
        var result: [(String, String)] = []
        for (key, value) in members {
            guard case .string(let text) = value else {
                throw ParseError(line: 1, reason: "\(key): expected a string value")
            }
            result.append((key, text))
        }
        return result
    }

    /// A cursor over the file's characters that knows its line number.
    struct Reader {
        let characters: [Character]
        var index = 0
        var line = 1

        init(_ text: String) { characters = Array(text) }

        var atEnd: Bool { index >= characters.count }
        var current: Character? { atEnd ? nil : characters[index] }

        mutating func advance() {
            if characters[index] == "\n" || characters[index] == "\r\n" { line += 1 }
            index += 1
        }

        func error(_ reason: String) -> ParseError { ParseError(line: line, reason: reason) }

        mutating func expect(_ text: String) -> Bool {
            let wanted = Array(text)
            guard index + wanted.count <= characters.count, Array(characters[index..<(index + wanted.count)]) == wanted
            else { return false }
            index += wanted.count
            return true
        }

        /// Entries `PREFIX KEY SEPARATOR VALUE` up to the end of the line; blank lines and
        /// `#` comments (docker's own files have them) are skipped.
        /// How a value is written after the separator.
        enum ValueForm { case raw, compose, shell, powerShell }

        mutating func lines(
            prefix: String, separator: Character = "=", value form: ValueForm
        ) throws(ParseError) -> [(String, String)] {
            var result: [(String, String)] = []
            while !atEnd {
                if current!.isNewline {
                    advance()
                    continue
                }
                if current == "#" {
                    while let c = current, !c.isNewline { index += 1 }
                    continue
                }
                // dotenv files often say `export K=V`; docker and compose would not mind it either.
                if prefix.isEmpty { _ = expect("export ") }
                guard expect(prefix) else {
                    throw error("expected \(prefix.isEmpty ? "KEY=VALUE" : "'\(prefix)KEY…'")")
                }
                let start = index
                while let c = current, c != separator, !c.isNewline { index += 1 }
                let key = String(characters[start..<index]).trimmingCharacters(in: .whitespaces)
                guard current == separator, !key.isEmpty else { throw error("expected KEY\(separator)VALUE") }
                guard EnvFile.isName(key) else { throw error("'\(key)' is not a variable name") }
                index += 1
                let text: String
                switch form {
                case .raw: text = try raw()
                case .compose: text = try compose()
                case .shell: text = try shellWord()
                case .powerShell: text = try powerShell()
                }
                guard atEnd || current!.isNewline else {
                    throw error("unexpected text after the value of \(key)")
                }
                result.append((key, text))
            }
            return result
        }

        /// docker, cmd: everything to the end of the line, as written.
        mutating func raw() throws(ParseError) -> String {
            let start = index
            while let c = current, !c.isNewline { index += 1 }
            return String(characters[start..<index])
        }

        /// compose: bare, `'…'` with `\'`, or `"…"` with `\"` `\n` `\t` `\r`; the closing quote
        /// ends the line (Telepresence writes `'ends\'` for a value ending in a backslash).
        mutating func compose() throws(ParseError) -> String {
            guard let quote = current, quote == "'" || quote == "\"" else { return try raw() }
            let start = index + 1
            var end = start
            while end < characters.count, !characters[end].isNewline { end += 1 }
            guard end - 1 >= start, characters[end - 1] == quote else { throw error("unterminated \(quote) value") }
            let body = characters[start..<(end - 1)]
            var value = ""
            var position = body.startIndex
            while position < body.endIndex {
                let c = body[position]
                if c == "\\", position + 1 < body.endIndex {
                    let next = body[position + 1]
                    let escaped: Character? =
                        next == quote
                        ? quote
                        : quote == "\"" ? ["n": "\n", "t": "\t", "r": "\r"][next] : nil
                    if let escaped {
                        value.append(escaped)
                        position += 2
                        continue
                    }
                }
                value.append(c)
                position += 1
            }
            index = end
            return value
        }

        /// sh, csh: a POSIX word — safe characters, `'…'` taken literally (newlines too), `\x`
        /// for x, `"…"` with `\"`, `\\`, `\$`, `` \` ``.
        mutating func shellWord() throws(ParseError) -> String {
            var value = ""
            while let c = current, !c.isNewline, c != " ", c != "\t" {
                switch c {
                case "'":
                    let opened = line
                    advance()
                    while let inner = current, inner != "'" {
                        value.append(inner)
                        advance()
                    }
                    guard current == "'" else { throw ParseError(line: opened, reason: "unterminated ' quote") }
                    advance()
                case "\\":
                    advance()
                    guard let escaped = current else { throw error("a backslash ends the file") }
                    value.append(escaped)
                    advance()
                case "\"":
                    let opened = line
                    advance()
                    while let inner = current, inner != "\"" {
                        if inner == "\\", index + 1 < characters.count, "\"\\$`".contains(characters[index + 1]) {
                            advance()
                        }
                        value.append(current!)
                        advance()
                    }
                    guard current == "\"" else { throw ParseError(line: opened, reason: "unterminated \" quote") }
                    advance()
                default:
                    value.append(c)
                    advance()
                }
            }
            return value
        }

        /// ps: `'…'` with `''` for a quote; newlines inside are part of the value.
        mutating func powerShell() throws(ParseError) -> String {
            guard current == "'" else { throw error("expected a '…' value") }
            let opened = line
            advance()
            var value = ""
            while true {
                guard let c = current else { throw ParseError(line: opened, reason: "unterminated ' quote") }
                advance()
                if c == "'" {
                    if current == "'" {
                        value.append("'")
                        advance()
                        continue
                    }
                    return value
                }
                value.append(c)
            }
        }

        /// ps:export: `[Environment]::SetEnvironmentVariable('K', 'V', 'User')` per entry.
        mutating func powerShellExports() throws(ParseError) -> [(String, String)] {
            var result: [(String, String)] = []
            while !atEnd {
                if current!.isNewline {
                    advance()
                    continue
                }
                guard expect("[Environment]::SetEnvironmentVariable(") else {
                    throw error("expected [Environment]::SetEnvironmentVariable(…)")
                }
                let key = try powerShell()
                guard expect(", ") else { throw error("expected ', ' after the name") }
                let value = try powerShell()
                guard expect(", 'User')") else { throw error("expected , 'User')") }
                guard EnvFile.isName(key) else { throw error("'\(key)' is not a variable name") }
                result.append((key, value))
            }
            return result
        }
    }

    /// Kubernetes allows any printable ASCII but `=` in a name; so do we, spaces aside.
    static func isName(_ key: String) -> Bool {
        !key.isEmpty && key.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "=" }
    }
}
