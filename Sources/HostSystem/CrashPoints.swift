import FoundationEssentials
import Glibc

/// Named steps at which the daemon kills itself, for the tests of what a daemon killed at
/// that very moment leaves behind (a `kill -9` from outside cannot aim between two lines).
///
/// `MULTIVERSE_CRASH_AT` names one step (for instance `live-backup.copied`); it is read
/// once, from the daemon's own environment, which only root sets (the unit sets none). When
/// it is unset, ``reach(_:)`` compares one string and returns.
public enum CrashPoints {
    /// The step armed for this process, if any.
    public static let armed: String? = ProcessInfo.processInfo.environment["MULTIVERSE_CRASH_AT"].flatMap { $0.isEmpty ? nil : $0 }

    /// Kills the process with SIGKILL (no clean-up of any kind runs) when `step` is the armed
    /// one; returns otherwise.
    public static func reach(_ step: StaticString) {
        guard let armed, armed == "\(step)" else { return }
        let line = "multiverse-controllerd: crash point \(step) reached (MULTIVERSE_CRASH_AT): killed with SIGKILL\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        kill(getpid(), SIGKILL)
    }
}
