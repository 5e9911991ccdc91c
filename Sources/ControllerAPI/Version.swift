/// Version information of the service.
public enum ControllerVersion {
    /// The release version, reported by the `Version` property and `--version`.
    public static let version = "0.3.0"
    /// The D-Bus API version (`APIVersion`).
    public static let apiVersion: UInt32 = ControllerNames.apiVersion
}
