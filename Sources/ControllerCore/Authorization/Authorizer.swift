import Logging
import Polkit

/// Decides privileged calls through polkit and writes one audit line per decision.
///
/// The subject is always the caller's unique bus name. A challenge without the
/// allow-interactive-authorization flag becomes `InteractiveAuthorizationRequired`; a "no",
/// or polkit being unreachable, becomes `AccessDenied`.
public struct Authorizer: Sendable {
    private let polkit: PolkitAuthority
    private let audit: Logger

    public init(polkit: PolkitAuthority, audit: Logger) {
        self.polkit = polkit
        self.audit = audit
    }

    /// The audit line of one decision: `key=value` fields, every text value quoted with
    /// ``LogText/quoted(_:)``, so a caller's value (a guest path, a name) can neither add a
    /// field nor end the line.
    public static func auditLine(caller: Caller, action: String, details: [String: String], decision: String) -> String {
        var fields = ["caller=\(LogText.quoted(caller.busName))", "uid=\(caller.uid)", "pid=\(caller.pid)", "action=\(LogText.quoted(action))"]
        for (key, value) in details.sorted(by: { $0.key < $1.key }) {
            // Cut long values (journald splits lines past its LineMax into entries of their own).
            let shown = value.utf8.count <= 1024 ? value : String(decoding: value.utf8.prefix(1024), as: UTF8.self) + "…(\(value.utf8.count) bytes)"
            fields.append("\(key)=\(LogText.quoted(shown))")
        }
        fields.append("decision=\(decision)")
        return fields.joined(separator: " ")
    }

    /// Returns when `caller` may perform `action`; throws the D-Bus error to send otherwise.
    /// `action` is a polkit action id (`org.multiverse.controller.disk.manage`).
    public func authorize(_ caller: Caller, action: String, details: [String: String]) async throws {
        var decision = "error"
        defer {
            audit.notice("\(Self.auditLine(caller: caller, action: action, details: details, decision: decision))")
        }
        do {
            switch try await polkit.check(busName: caller.busName, uid: caller.uid, action: action, details: details,
                                          allowInteraction: caller.allowInteraction) {
            case .authorized:
                decision = "allowed"
                return
            case .challenge where !caller.allowInteraction:
                decision = "interactive-authorization-required"
                throw ControllerError.interactiveAuthorizationRequired(
                    "\(action) needs authentication; call again with interactive authorization allowed")
            case .challenge, .notAuthorized:
                decision = "denied"
                throw ControllerError.accessDenied("not authorized for \(action)")
            }
        } catch let busy as PolkitBusy {
            decision = "refused-busy"
            if busy.perUser {
                throw ControllerError.limitsExceeded("""
                    uid \(caller.uid) has \(busy.limit) authorization checks waiting for authentication ([polkit] \
                    max_interactive_per_user = \(busy.limit)); answer or cancel them first
                    """)
            }
            throw ControllerError.limitsExceeded("too many authorization checks pending ([polkit] max_pending = \(busy.limit)); try again")
        } catch is PolkitCancelled {
            decision = "cancelled-caller-gone"
            throw ControllerError.accessDenied("the authorization check was cancelled: the caller left the bus")
        } catch let unavailable as PolkitUnavailable {
            decision = "denied-polkit-unavailable"
            throw ControllerError.accessDenied("authorization failed, polkit unavailable: \(unavailable.message)")
        }
    }
}
