/// One page of a directory listing (ListFiles, ListDirectory): the entries after `after`
/// (by name, the listing's order), at most `limit` of them, and never a reply larger than
/// ``maxReplyBytes``. A caller that got `limit` entries asks again with `after` set to the
/// last name.
public struct ListingPage: Sendable, Equatable {
    /// The most entries one reply holds (and the default).
    public static let maxLimit: UInt32 = 10_000
    /// The most bytes of names and link targets one reply holds.
    public static let maxReplyBytes = 16 << 20

    public var after: String?
    public var limit: UInt32

    public init(after: String? = nil, limit: UInt32? = nil) {
        self.after = after
        self.limit = limit ?? Self.maxLimit
    }

    /// `InvalidArgs` naming the value for a limit of 0 or above ``maxLimit``.
    public func validate() throws {
        guard (1...Self.maxLimit).contains(limit) else {
            throw ControllerError.invalidArgs("limit \(limit) is outside 1...\(Self.maxLimit)")
        }
    }

    /// The page of `entries` (sorted by name); `LimitsExceeded` when its names and targets
    /// would pass ``maxReplyBytes`` (ask for fewer with `limit`).
    public func apply(to entries: [GuestFileEntry]) throws -> [GuestFileEntry] {
        let rest = after.map { after in entries.drop { $0.name <= after } } ?? entries[...]
        let page = Array(rest.prefix(Int(limit)))
        let bytes = page.reduce(0) { $0 + $1.name.utf8.count + $1.target.utf8.count + 64 }
        guard bytes <= Self.maxReplyBytes else {
            throw ControllerError.limitsExceeded("these \(page.count) entries take \(bytes) bytes, more than a reply holds (\(Self.maxReplyBytes)); ask for fewer with the limit option")
        }
        return page
    }
}
