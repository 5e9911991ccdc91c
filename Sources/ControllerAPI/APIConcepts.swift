/// The prose sections of the API reference that belong to no single member: what names,
/// sizes and object paths look like, how jobs and errors behave. Rendered by
/// ``APIReference/manPage()`` after the introduction, each paragraph as one roff paragraph.
public enum APIConcepts {
    /// A section of the reference: its title and its paragraphs (plain text; the renderer
    /// escapes roff).
    public struct Section: Sendable {
        public let title: String
        public let paragraphs: [String]
    }

    public static let sections: [Section] = []
}
