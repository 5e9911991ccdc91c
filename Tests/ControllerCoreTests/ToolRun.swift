import Foundation

/// Runs a tool by absolute path with `arguments` (no shell) and returns its exit status and
/// its standard output and error together: how the Core tests ask qemu-img, qemu-io and the
/// other real tools what they see. `environment` is added to the test's own.
func runTool(_ path: String, _ arguments: [String], environment: [String: String] = [:]) -> (status: Int32, output: String) {
    let p = Process()
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    do { try p.run() } catch { return (-1, "\(path): \(error)") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
