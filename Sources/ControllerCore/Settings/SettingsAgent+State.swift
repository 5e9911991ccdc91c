import FoundationEssentials
import HostSystem

/// The enforcing flag kept in the state directory across restarts, and error helpers.
extension SettingsAgent {
    static func loadEnforcing(_ file: String) -> Bool? {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("enforcing=") {
            return line.dropFirst("enforcing=".count) == "true"
        }
        return nil
    }

    func saveEnforcing(_ on: Bool) throws {
        let directory = parentDirectory(of: stateFile)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ControllerError.io("cannot create the state directory \(directory): \(errorText(error))")
        }
        try HostRoot("/").write(stateFile, "# multiverse-controllerd settings state (SetEnforcing)\nenforcing=\(on)\n", newFileMode: 0o644)
    }

    static func message(_ error: Error) -> String {
        (error as? ControllerError)?.message ?? "\(error)"
    }

    static func prefixed(_ error: ControllerError, _ prefix: String) -> ControllerError {
        switch error {
        case .invalidArgs(let m): return .invalidArgs(prefix + m)
        case .invalidState(let m): return .invalidState(prefix + m)
        case .busy(let m): return .busy(prefix + m)
        case .notSupported(let m): return .notSupported(prefix + m)
        default: return .io(prefix + error.message)
        }
    }
}
