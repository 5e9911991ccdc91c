/// Introspection XML in the format of the D-Bus specification, generated from interface descriptions.
public enum Introspection {
    public static let doctype =
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
        + " \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"

    /// The XML document for one interface (a `<node>` holding just that interface).
    public static func xml(for interfaces: [DBusInterface]) -> String {
        var out = doctype + "<node>\n"
        for iface in interfaces { out += interfaceXML(iface) }
        out += "</node>\n"
        return out
    }

    static func interfaceXML(_ iface: DBusInterface) -> String {
        var out = " <interface name=\"\(escape(iface.name))\">\n"
        for m in iface.methods {
            out += "  <method name=\"\(escape(m.name))\">\n"
            for a in m.inputs { out += "   <arg type=\"\(escape(a.signature))\" name=\"\(escape(a.name))\" direction=\"in\"/>\n" }
            for a in m.outputs { out += "   <arg type=\"\(escape(a.signature))\" name=\"\(escape(a.name))\" direction=\"out\"/>\n" }
            out += "  </method>\n"
        }
        for p in iface.properties {
            let access = p.writable ? "readwrite" : "read"
            let annotation: String?
            switch p.change {
            case .const: annotation = "const"
            case .emitsInvalidation: annotation = "invalidates"
            case .none: annotation = "false"
            case .emitsChange: annotation = nil
            }
            if let annotation {
                out += "  <property name=\"\(escape(p.name))\" type=\"\(escape(p.signature))\" access=\"\(access)\">\n"
                out += "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"\(annotation)\"/>\n"
                out += "  </property>\n"
            } else {
                out += "  <property name=\"\(escape(p.name))\" type=\"\(escape(p.signature))\" access=\"\(access)\"/>\n"
            }
        }
        for s in iface.signals {
            out += "  <signal name=\"\(escape(s.name))\">\n"
            for a in s.arguments { out += "   <arg type=\"\(escape(a.signature))\" name=\"\(escape(a.name))\"/>\n" }
            out += "  </signal>\n"
        }
        out += " </interface>\n"
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(ch)
            }
        }
        return out
    }
}
