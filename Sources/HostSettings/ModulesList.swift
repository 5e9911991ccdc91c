/// A kernel-modules list file (`/etc/initramfs-tools/modules`, `/etc/modules`,
/// `/etc/modules-load.d/*.conf`): one module per line, optionally with arguments; `#`
/// (and `;` in modules-load.d) start comments.
public struct ModulesList: Sendable, Equatable {
    public private(set) var text: String

    public init(_ text: String) { self.text = text }

    /// Modules named on non-comment lines; `-` and `_` are the same to the kernel.
    public var modules: Set<String> {
        var out = Set<String>()
        for line in text.split(separator: "\n") {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard let first = trimmed.first, first != "#", first != ";" else { continue }
            if let word = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).first {
                out.insert(Self.canonical(String(word)))
            }
        }
        return out
    }

    /// The modules of `wanted` that are not listed, in `wanted`'s order.
    public func missing(_ wanted: [String]) -> [String] {
        let have = modules
        return wanted.filter { !have.contains(Self.canonical($0)) }
    }

    /// Appends a line for each missing module; every other line and comment stays as it was.
    public mutating func add(_ wanted: [String]) -> [String] {
        let toAdd = missing(wanted)
        guard !toAdd.isEmpty else { return [] }
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        for module in toAdd { text += module + "\n" }
        return toAdd
    }

    static func canonical(_ name: String) -> String { name.replacing("-", with: "_") }
}
