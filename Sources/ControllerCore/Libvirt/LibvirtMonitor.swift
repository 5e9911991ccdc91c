import BlockingThreads
import Libvirt
import Logging

/// Keeps a libvirt connection open: connects in the background, notices when libvirtd goes
/// away (keepalive), reconnects with backoff, and reports each change of `connected`.
public actor LibvirtMonitor {
    public nonisolated let uri: String
    private let logger: Logger
    private let thread = ThreadPool(name: "libvirt", threads: 1)
    private var connection: LibvirtConnection?
    private var watcher: Task<Void, Never>?
    private var onChange: (@Sendable (Bool) async -> Void)?

    public init(uri: String, logger: Logger) {
        self.uri = uri
        self.logger = logger
    }

    public var isConnected: Bool { connection != nil }

    /// The open connection, or nil while disconnected.
    var current: LibvirtConnection? { connection }

    /// Starts connecting and watching; `onChange` is called with every change of state.
    public func start(onChange: @escaping @Sendable (Bool) async -> Void) {
        self.onChange = onChange
        watcher = Task { await self.watch() }
    }

    public func stop() async {
        watcher?.cancel()
        if let c = connection { _ = try? await thread.run { c.close() } }
        connection = nil
    }

    private func watch() async {
        var backoff: Duration = .milliseconds(500)
        while !Task.isCancelled {
            if let c = connection {
                let alive = (try? await thread.run { c.isAlive }) ?? false
                if !alive {
                    logger.warning("libvirt connection to \(uri) lost; reconnecting")
                    _ = try? await thread.run { c.close() }
                    connection = nil
                    await onChange?(false)
                } else {
                    try? await Task.sleep(for: .seconds(2))
                    continue
                }
            }
            let uri = self.uri
            do {
                let c = try await thread.run { try LibvirtConnection(uri: uri) }
                connection = c
                backoff = .milliseconds(500)
                logger.info("connected to libvirt at \(uri)")
                await onChange?(true)
            } catch {
                logger.debug("cannot connect to libvirt at \(uri): \(error); retrying in \(backoff)")
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }
}
