import Foundation

/// A job's progress on stderr: a redrawn bar on a terminal, followed by the job's Status;
/// plain lines otherwise (one per whole percent and one per new Status, so logs stay short).
struct ProgressBar {
    let terminal: Bool
    private var lastPercent = -1
    private var spin = 0
    private var lastStatus = ""

    init(terminal: Bool) { self.terminal = terminal }

    /// `fraction` nil: progress unknown. `status`: the job's own line about what it does now.
    /// `done`: the job ended; the bar's line is closed.
    mutating func show(_ operation: String, _ fraction: Double?, status: String = "", done: Bool) {
        if terminal {
            let width = 30
            let line: String
            if let fraction {
                let filled = min(width, Int((fraction * Double(width)).rounded(.down)))
                line = "\(operation) [" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
                    + "] \(Int(fraction * 100))%"
            } else {
                let frames = ["|", "/", "-", "\\"]
                spin += 1
                line = "\(operation) [" + String(repeating: " ", count: width) + "] " + frames[spin % 4]
            }
            // The status after the bar, cut so the line does not wrap on a narrow terminal.
            let tail = status.isEmpty ? "" : "  " + String(TerminalText.escape(status).prefix(max(0, 100 - line.count)))
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + tail + (done ? "\n" : "")).utf8))
            return
        }
        if status != lastStatus {
            if !status.isEmpty { printError("\(operation): \(status)") }
            lastStatus = status
        }
        guard let fraction else { return }
        let percent = Int(fraction * 100)
        if percent != lastPercent {
            FileHandle.standardError.write(Data("\(operation): \(percent)%\n".utf8))
            lastPercent = percent
        }
    }
}
