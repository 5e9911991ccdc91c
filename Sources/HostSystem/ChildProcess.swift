import FoundationEssentials
import Glibc
import Subprocess
import SystemPackage

/// What a finished child process printed and how it ended.
public struct ChildResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    /// The last lines of stderr, for error messages.
    public var stderrExcerpt: String {
        let lines = stderr.split(separator: "\n").suffix(5).joined(separator: " | ")
        return lines.count > 600 ? String(lines.suffix(600)) : lines
    }
}

/// Runs helper programs by absolute path with an argv: never through a shell.
public enum ChildProcess {
    /// Runs `path` with `arguments` and collects its output (up to `limit` bytes each).
    /// Task cancellation terminates the child.
    public static func run(_ path: String, _ arguments: [String], limit: Int = 1 << 20) async throws -> ChildResult {
        precondition(path.hasPrefix("/"), "child processes are started by absolute path")
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments),
            output: .string(limit: limit), error: .string(limit: limit))
        return ChildResult(status: exitStatus(result.terminationStatus), stdout: result.standardOutput, stderr: result.standardError)
    }

    /// The exit code, or 128 + the signal that ended the child (as a shell reports it).
    static func exitStatus(_ status: TerminationStatus) -> Int32 {
        switch status {
        case .exited(let code): Int32(code)
        case .signaled(let signal): 128 + Int32(signal)
        }
    }

    /// Runs `path` with `arguments`, `input` on its standard input, and collects its output.
    public static func run(_ path: String, _ arguments: [String], input: String, limit: Int = 1 << 20) async throws -> ChildResult {
        precondition(path.hasPrefix("/"), "child processes are started by absolute path")
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments), input: .string(input),
            output: .string(limit: limit), error: .string(limit: limit))
        return ChildResult(status: exitStatus(result.terminationStatus), stdout: result.standardOutput, stderr: result.standardError)
    }

    /// Runs `path` with `arguments`, handing its standard output to `onOutput` as the child
    /// writes it (chunks, not lines), and collects its standard error (up to `limit`
    /// bytes). Task cancellation terminates the child.
    public static func run(_ path: String, _ arguments: [String], limit: Int = 1 << 20,
                           onOutput: (String) -> Void) async throws -> ChildResult {
        precondition(path.hasPrefix("/"), "child processes are started by absolute path")
        let result = try await Subprocess.run(
            .path(FilePath(path)), arguments: Arguments(arguments), input: .none,
            output: .sequence, error: .string(limit: limit)) { execution in
            var kept = ""
            for try await buffer in execution.standardOutput {
                let text = buffer.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
                onOutput(text)
                if kept.utf8.count < limit { kept += text }
            }
            return kept
        }
        return ChildResult(status: exitStatus(result.terminationStatus), stdout: result.closureResult,
                           stderr: result.standardError ?? "")
    }
}
