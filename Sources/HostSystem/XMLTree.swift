import CLibxml2
import FoundationEssentials
import Glibc

/// A small XML element tree on libxml2: parsed strictly (no recovery, no network, no entity
/// expansion) into Swift values, the libxml2 document freed at once, and serialised by
/// libxml2 (which escapes every text and attribute value). FoundationXML is not used: its
/// XMLDocument leaks about 10 KB per parsed document, which a long-running daemon that
/// re-reads domain XML on every event cannot afford.
public final class XElement {
    /// Qualified name as written (`domain`, `mv:controller`).
    public var name: String
    /// Namespace URI of the element, when it has one.
    public var namespaceURI: String?
    /// Namespace declarations on this element: (prefix or nil for the default, URI).
    public var namespaceDeclarations: [(prefix: String?, uri: String)]
    public var attributes: [(name: String, value: String)]
    public var children: [XNode]

    public init(_ name: String, text: String? = nil, attributes: [(String, String)] = [], children: [XElement] = []) {
        self.name = name
        namespaceURI = nil
        namespaceDeclarations = []
        self.attributes = attributes.map { (name: $0.0, value: $0.1) }
        self.children = children.map { .element($0) }
        if let text { self.children.append(.text(text)) }
    }

    /// The name without its prefix.
    public var localName: String { name.split(separator: ":", maxSplits: 1).last.map(String.init) ?? name }

    /// Child elements, optionally only those named `name`.
    public func elements(_ name: String? = nil) -> [XElement] {
        children.compactMap { if case .element(let e) = $0, name == nil || e.name == name { return e } else { return nil } }
    }

    public func first(_ name: String) -> XElement? { elements(name).first }

    /// Follows `a/b/c` through first children of those names.
    public func path(_ path: String) -> XElement? {
        var current: XElement? = self
        for part in path.split(separator: "/") { current = current?.first(String(part)) }
        return current
    }

    public func attribute(_ name: String) -> String? { attributes.first { $0.name == name }?.value }

    public func setAttribute(_ name: String, _ value: String) {
        if let i = attributes.firstIndex(where: { $0.name == name }) { attributes[i].value = value } else { attributes.append((name, value)) }
    }

    public func removeAttribute(_ name: String) { attributes.removeAll { $0.name == name } }

    /// The text of this element and its descendants.
    public var text: String {
        children.map { node -> String in
            switch node {
            case .text(let t): return t
            case .element(let e): return e.text
            }
        }.joined()
    }

    /// Replaces the children with one text node.
    public func setText(_ text: String) { children = [.text(text)] }

    public func append(_ child: XElement) { children.append(.element(child)) }

    /// Removes the child elements for which `matches` is true.
    public func removeElements(where matches: (XElement) -> Bool) {
        children.removeAll { if case .element(let e) = $0 { return matches(e) } else { return false } }
    }

    // MARK: parsing

    /// Parses a document strictly; malformed input is `InvalidArgs` with libxml2's message.
    public static func parse(_ xml: String) throws -> XElement {
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue | XML_PARSE_NOCDATA.rawValue)
        let count = xml.utf8.count
        guard count <= 16 << 20 else { throw SystemError.tooLarge("XML larger than 16 MiB") }
        let doc = xml.withCString { xmlReadMemory($0, Int32(count), "input.xml", "UTF-8", options) }
        guard let doc else {
            let detail = xmlGetLastError().flatMap { $0.pointee.message }.map { String(cString: $0).trimmed }
            throw SystemError.invalidInput("the XML does not parse\(detail.map { ": \($0)" } ?? "")")
        }
        defer { xmlFreeDoc(doc) }
        // No document type: its entities could expand or name files; no XML the service
        // reads (libvirt's, a caller's) has one.
        guard doc.pointee.intSubset == nil, doc.pointee.extSubset == nil else {
            throw SystemError.invalidInput("the XML has a DOCTYPE declaration; DOCTYPE and entities are not accepted")
        }
        guard let root = xmlDocGetRootElement(doc) else { throw SystemError.invalidInput("the XML has no root element") }
        return convert(root, doc)
    }

    private static func string(_ p: UnsafePointer<xmlChar>?) -> String? {
        guard let p else { return nil }
        return String(cString: UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self))
    }

    private static func convert(_ node: xmlNodePtr, _ doc: xmlDocPtr) -> XElement {
        let local = string(node.pointee.name) ?? ""
        let prefix = node.pointee.ns.flatMap { string($0.pointee.prefix) }
        let element = XElement(prefix.map { "\($0):\(local)" } ?? local)
        element.namespaceURI = node.pointee.ns.flatMap { string($0.pointee.href) }
        var ns = node.pointee.nsDef
        while let n = ns {
            element.namespaceDeclarations.append((string(n.pointee.prefix), string(n.pointee.href) ?? ""))
            ns = n.pointee.next
        }
        var attr = node.pointee.properties
        while let a = attr {
            let name = string(a.pointee.name) ?? ""
            let attrPrefix = a.pointee.ns.flatMap { string($0.pointee.prefix) }
            var value = ""
            if let v = xmlNodeListGetString(doc, a.pointee.children, 1) {
                value = string(v) ?? ""
                xmlFreeValue(v)
            }
            element.attributes.append((attrPrefix.map { "\($0):\(name)" } ?? name, value))
            attr = a.pointee.next
        }
        var child = node.pointee.children
        while let c = child {
            switch c.pointee.type {
            case XML_ELEMENT_NODE: element.children.append(.element(convert(c, doc)))
            case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
                if let t = string(c.pointee.content) { element.children.append(.text(t)) }
            default: break   // comments, processing instructions
            }
            child = c.pointee.next
        }
        return element
    }

    // MARK: serialising

    /// The element as XML text, written by libxml2 (no XML declaration).
    public var xmlString: String {
        guard let doc = xmlNewDoc("1.0") else { return "" }
        defer { xmlFreeDoc(doc) }
        let root = build(in: doc, parent: nil)
        xmlDocSetRootElement(doc, root)
        guard let buffer = xmlBufferCreate() else { return "" }
        defer { xmlBufferFree(buffer) }
        _ = xmlNodeDump(buffer, doc, root, 0, 0)
        return XElement.string(xmlBufferContent(buffer)) ?? ""
    }

    private func build(in doc: xmlDocPtr, parent: xmlNodePtr?) -> xmlNodePtr? {
        let parts = name.split(separator: ":", maxSplits: 1).map(String.init)
        let (prefix, local) = parts.count == 2 ? (Optional(parts[0]), parts[1]) : (nil, name)
        guard let node = xmlNewDocNode(doc, nil, local, nil) else { return nil }
        if let parent { xmlAddChild(parent, node) }
        for declaration in namespaceDeclarations { xmlNewNs(node, declaration.uri, declaration.prefix) }
        if let found = xmlSearchNs(doc, node, prefix) { xmlSetNs(node, found) }
        for attribute in attributes { xmlNewProp(node, attribute.name, attribute.value) }
        for child in children {
            switch child {
            case .element(let e): _ = e.build(in: doc, parent: node)
            case .text(let t): xmlAddChild(node, xmlNewDocText(doc, t))
            }
        }
        return node
    }
}

/// A child of an element.
public enum XNode {
    case element(XElement)
    case text(String)
}

/// `xmlFree` is a C global variable holding a function pointer, which Swift 6 refuses to
/// read from arbitrary code; libxml2's allocator is malloc unless an application changes it
/// (this one never does), so the value is released with free().
private func xmlFreeValue(_ p: UnsafeMutablePointer<xmlChar>) { free(p) }
