import ControllerCore
import FoundationEssentials
import Glibc
import Logging

/// Writes one line per message to stderr with a syslog priority prefix (`<6>`), so journald
/// keeps the level of each line.
struct SyslogLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let priority: Int
        switch event.level {
        case .trace, .debug: priority = 7
        case .info: priority = 6
        case .notice: priority = 5
        case .warning: priority = 4
        case .error: priority = 3
        case .critical: priority = 2
        }
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let meta = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\(LogText.quoted("\($0.value)"))" }.joined(separator: " ")
        // Every message is one line, whatever a caller or a guest put in it: control
        // characters (newlines, carriage returns, escapes) are written as code points, so
        // no value can start a journal line of its own or a `<N>` priority prefix.
        // One write(2) per line keeps lines from different threads whole.
        let line = "<\(priority)>\(label): \(LogText.escapingControls("\(event.message)"))\(meta)\n"
        line.utf8CString.withUnsafeBufferPointer { buffer in
            _ = write(2, buffer.baseAddress, buffer.count - 1)
        }
    }
}

extension Logger.Level {
    init?(configName: String) {
        switch configName {
        case "trace": self = .trace
        case "debug": self = .debug
        case "info": self = .info
        case "notice": self = .notice
        case "warning": self = .warning
        case "error": self = .error
        case "critical": self = .critical
        default: return nil
        }
    }
}
