import CSystemd

/// Tells the service manager about start-up and shutdown (`sd_notify`); a no-op when not
/// started by systemd.
public enum ServiceNotifier {
    public static func notify(_ state: String) {
        _ = sd_notify(0, state)
    }
}
