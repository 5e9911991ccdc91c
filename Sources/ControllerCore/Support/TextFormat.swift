import HostSystem
import FoundationEssentials

/// The few formatted strings the daemon writes (names, logs), made without Foundation's
/// `String(format:)` and date formatters: those sit in the ICU-backed part of Foundation,
/// which the daemon does not link (it imports FoundationEssentials only).
enum TextFormat {
    /// `seconds` with exactly `digits` decimals (`1.250`), rounded half away from zero.
    static func decimal(_ seconds: Double, digits: Int = 3) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(seconds) * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled - Double(whole) * scale)
        let sign = seconds < 0 && scaled != 0 ? "-" : ""
        guard digits > 0 else { return "\(sign)\(whole)" }
        let text = String(fraction)
        return "\(sign)\(whole)." + String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    /// The duration in seconds with three decimals, for logs (`12.034`).
    static func seconds(_ duration: Duration) -> String {
        decimal(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// A UTC time as `20261202T013005Z` (ISO 8601 basic format), for names of backups and
    /// automatic snapshots: sortable, and free of the `:` and `-` a file or snapshot name
    /// would otherwise carry.
    static func compactUTC(secondsSince1970 time: Int) -> String { HostFacts.compactUTC(secondsSince1970: time) }

    /// The current UTC time as `compactUTC(secondsSince1970:)`.
    static func compactUTCNow() -> String { compactUTC(secondsSince1970: HostFacts.wallClock().seconds) }

    /// `value` in lower-case hexadecimal.
    static func hex<T: BinaryInteger>(_ value: T) -> String { String(value, radix: 16) }
}


/// An error as an operator reads it: for a file-system error, the system's message for its
/// cause (`No such file or directory`) instead of Foundation's structure dump.
func errorText(_ error: any Error) -> String {
    if let posix = error as? POSIXError { return systemMessage(posix.code.rawValue) }
    if let cocoa = error as? CocoaError {
        if let underlying = cocoa.userInfo["NSUnderlyingError"] as? POSIXError {
            return systemMessage(underlying.code.rawValue)
        }
        return "file system error \(cocoa.code.rawValue)"
    }
    return "\(error)"
}
