import CLibXML2
import DriftcheckCore
import Foundation

/// WireMock's XML matchers on libxml2: `equalToXml` (XMLUnit's comparison as WireMock
/// configures it — whitespace and comments ignored, namespace prefixes and sibling order not
/// counted, placeholders when enabled) and `matchesXPath`.
enum XMLMatching {
    /// Parser options: no network, no entity expansion from outside, no noise on stderr.
    static let options = Int32(
        XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue
            | XML_PARSE_NOCDATA.rawValue)

    private static let quiet: Void = {
        // XPath compilation errors go through the structured handler; keep them off stderr.
        xmlSetStructuredErrorFunc(nil) { _, _ in }
    }()

    /// A parsed document, freed with the value.
    final class Document {
        let pointer: xmlDocPtr
        init?(_ text: String) {
            _ = XMLMatching.quiet
            let trimmed = text.drop { $0.isWhitespace }
            guard trimmed.hasPrefix("<") else { return nil }
            var bytes = Array(text.utf8)
            guard
                let parsed = bytes.withUnsafeMutableBytes({ raw in
                    xmlReadMemory(
                        raw.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(raw.count), nil, "UTF-8",
                        XMLMatching.options)
                })
            else { return nil }
            pointer = parsed
        }
        deinit { xmlFreeDoc(pointer) }
        var root: xmlNodePtr? { xmlDocGetRootElement(pointer) }
    }

    // MARK: equalToXml

    struct Placeholders {
        var enabled: Bool
        var opening = #"\$\{"#
        var closing = #"\}"#

        /// Whether `expected` (a text or attribute value) accepts `actual`; nil when it is no placeholder.
        func accepts(_ expected: String, _ actual: String) -> Bool? {
            guard enabled else { return nil }
            let pattern =
                "^\\s*\(opening)\\s*xmlunit\\.(ignore|isNumber|isDateTime|matchesRegex)(?:\\((.*)\\))?\\s*\(closing)\\s*$"
            guard let regex = try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators]),
                let match = regex.firstMatch(in: expected, range: NSRange(expected.startIndex..., in: expected)),
                let kindRange = Range(match.range(at: 1), in: expected)
            else { return nil }
            let argument = Range(match.range(at: 2), in: expected).map { String(expected[$0]) }
            switch expected[kindRange] {
            case "ignore": return true
            case "isNumber": return Double(actual.trimmingCharacters(in: .whitespaces)) != nil
            case "isDateTime":
                return StringFormat.of(actual.trimmingCharacters(in: .whitespaces)).map {
                    $0 == .date || $0 == .dateTime
                }
                    ?? false
            default:
                guard let argument, let inner = try? NSRegularExpression(pattern: "^(?:\(argument))$") else {
                    return false
                }
                return inner.firstMatch(in: actual, range: NSRange(actual.startIndex..., in: actual)) != nil
            }
        }
    }

    /// Whether `actual` is the XML document `expected` describes.
    static func equal(expected: String, actual: String, placeholders: Placeholders) -> Bool {
        guard let want = Document(expected), let have = Document(actual), let a = want.root, let b = have.root else {
            return false
        }
        return same(a, b, placeholders)
    }

    static func name(_ node: xmlNodePtr) -> String { node.pointee.name.map { String(cString: $0) } ?? "" }

    static func namespace(_ node: xmlNodePtr) -> String? {
        node.pointee.ns?.pointee.href.map { String(cString: $0) }
    }

    static func content(_ node: xmlNodePtr) -> String {
        guard let text = xmlNodeGetContent(node) else { return "" }
        defer { driftcheck_xml_free(text) }
        return String(cString: text)
    }

    /// Attributes by `{namespace}name`; namespace declarations are not attributes here.
    static func attributes(_ node: xmlNodePtr) -> [String: String] {
        var result: [String: String] = [:]
        var attribute = node.pointee.properties
        while let current = attribute {
            // By written name (`a:sku`): WireMock compares attribute prefixes, not namespace URIs.
            let prefix = current.pointee.ns?.pointee.prefix.map { String(cString: $0) + ":" } ?? ""
            let key = prefix + (current.pointee.name.map { String(cString: $0) } ?? "")
            let value = xmlNodeListGetString(current.pointee.doc, current.pointee.children, 1)
            result[key] = value.map { String(cString: $0) } ?? ""
            if let value { driftcheck_xml_free(value) }
            attribute = current.pointee.next
        }
        return result
    }

    enum Child {
        case element(xmlNodePtr)
        case text(String)
    }

    /// Element children and non-blank text, comments and processing instructions left out.
    static func children(_ node: xmlNodePtr) -> [Child] {
        var result: [Child] = []
        var child = node.pointee.children
        while let current = child {
            switch current.pointee.type {
            case XML_ELEMENT_NODE: result.append(.element(current))
            case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
                let text = content(current).trimmingCharacters(in: .whitespacesAndNewlines)
                if !text.isEmpty { result.append(.text(text)) }
            default: break
            }
            child = current.pointee.next
        }
        return result
    }

    static func prefix(_ node: xmlNodePtr) -> String? { node.pointee.ns?.pointee.prefix.map { String(cString: $0) } }

    /// Elements compare by local name. Only an unprefixed expected element in a default
    /// namespace pins it: the request's element must be unprefixed in the same one. So WireMock
    /// 2.35 answers (checked against the jar).
    static func sameName(_ expected: xmlNodePtr, _ actual: xmlNodePtr) -> Bool {
        guard name(expected) == name(actual) else { return false }
        if prefix(expected) == nil, let uri = namespace(expected) {
            return prefix(actual) == nil && namespace(actual) == uri
        }
        return true
    }

    static func same(_ expected: xmlNodePtr, _ actual: xmlNodePtr, _ placeholders: Placeholders) -> Bool {
        guard sameName(expected, actual) else { return false }
        let want = attributes(expected)
        let have = attributes(actual)
        guard want.count == have.count else { return false }
        for (key, value) in want {
            guard let other = have[key] else { return false }
            if value != other && placeholders.accepts(value, other) != true { return false }
        }
        let wantChildren = children(expected)
        var haveChildren = children(actual)
        // `${xmlunit.ignore}` as an element's only text also accepts an empty element.
        if wantChildren.count == 1, case .text(let text) = wantChildren[0], haveChildren.isEmpty,
            placeholders.accepts(text, "") == true
        {
            return true
        }
        guard wantChildren.count == haveChildren.count else { return false }
        // Siblings are matched by name, not position (WireMock's order-invariant node matcher).
        for child in wantChildren {
            let index = haveChildren.firstIndex { candidate in
                switch (child, candidate) {
                case (.text(let a), .text(let b)): return a == b || placeholders.accepts(a, b) == true
                case (.element(let a), .element(let b)): return same(a, b, placeholders)
                default: return false
                }
            }
            guard let index else { return false }
            haveChildren.remove(at: index)
        }
        return true
    }

    // MARK: matchesXPath

    /// The values of the nodes `expression` selects: text and attribute values as text, elements
    /// as their XML. Nil when the document or the expression cannot be read, or the expression
    /// selects no nodes (a number or a boolean), as in WireMock.
    static func xpath(_ expression: String, in text: String, namespaces: [String: String]) -> [String]? {
        guard let document = Document(text), let context = xmlXPathNewContext(document.pointer) else { return nil }
        defer { xmlXPathFreeContext(context) }
        for (prefix, uri) in namespaces { xmlXPathRegisterNs(context, prefix, uri) }
        guard let result = xmlXPathEvalExpression(expression, context) else { return nil }
        defer { xmlXPathFreeObject(result) }
        guard result.pointee.type == XPATH_NODESET, let set = result.pointee.nodesetval else { return nil }
        var values: [String] = []
        for index in 0..<Int(set.pointee.nodeNr) {
            guard let node = set.pointee.nodeTab[index] else { continue }
            if node.pointee.type == XML_ELEMENT_NODE {
                let buffer = xmlBufferCreate()
                defer { xmlBufferFree(buffer) }
                xmlNodeDump(buffer, document.pointer, node, 0, 0)
                values.append(buffer.map { String(cString: xmlBufferContent($0)) } ?? "")
            } else {
                values.append(content(node))
            }
        }
        return values
    }
}
