import Foundation

/// Result of a finished command.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
    var ok: Bool { status == 0 }
    /// stdout and stderr together, for assertion messages.
    var all: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// A child process started with posix_spawn and reaped with waitpid by us alone.
/// (Foundation's Process missed the exit of scripts that leave daemons behind, so the
/// harness does not use it.)
final class Child {
    let pid: pid_t
    private(set) var exitStatus: Int32?

    /// Starts `path` with `arguments`; output goes to the given files (or /dev/null).
    init(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
         stdout: String = "/dev/null", stderr: String = "/dev/null") throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let r = posix_spawn(&child, path, &actions, nil, &argv, &envp)
        guard r == 0 else { throw StackError("cannot start \(path): \(String(cString: strerror(r)))") }
        pid = child
    }

    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return false
        }
        return r == 0
    }

    /// Waits up to `timeout`; kills the child after that. Returns the exit status.
    @discardableResult
    func wait(timeout: TimeInterval) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning && Date() < deadline { usleep(10_000) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { usleep(10_000) }
        }
        return exitStatus ?? -1
    }
}

/// Runs programs for tests, capturing output in files so no pipe can fill up or be held open
/// by a daemon the program started.
enum Command {
    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                    timeout: TimeInterval = 120) -> CommandResult {
        let path = executable.hasPrefix("/") ? executable : (["/usr/bin/", "/usr/sbin/", "/bin/"]
            .map { $0 + executable }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? executable)
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("cmd-\(UUID().uuidString)").path
        defer { unlink(base + ".out"); unlink(base + ".err") }
        let status: Int32
        do {
            status = try Child(path, arguments, environment: environment, stdout: base + ".out", stderr: base + ".err")
                .wait(timeout: timeout)
        } catch {
            return CommandResult(status: -1, stdout: "", stderr: "\(error)")
        }
        let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        return CommandResult(status: status, stdout: out, stderr: err)
    }
}
