import Foundation

/// A job's progress on stderr: a redrawn bar on a terminal, plain lines otherwise (one per
/// whole percent, so logs stay short).
struct ProgressBar {
    let terminal: Bool
    private var lastPercent = -1
    private var spin = 0

    init(terminal: Bool) { self.terminal = terminal }

    /// `fraction` nil: progress unknown. `done`: the job ended; the bar's line is closed.
    mutating func show(_ operation: String, _ fraction: Double?, done: Bool) {
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
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (done ? "\n" : "")).utf8))
            return
        }
        guard let fraction else { return }
        let percent = Int(fraction * 100)
        if percent != lastPercent {
            FileHandle.standardError.write(Data("\(operation): \(percent)%\n".utf8))
            lastPercent = percent
        }
    }
}
