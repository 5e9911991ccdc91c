// multiverse-guestfs: the libguestfs appliance helper of multiverse-controllerd.
//
// Filesystems inside disk images are written by guests and are hostile. libguestfs parses
// them inside its appliance (a small VM run by qemu); this helper owns the libguestfs
// handle, so the library, its replies from the appliance and the appliance's qemu all run
// as an unprivileged user without capabilities. The daemon starts one helper per appliance
// as that user, with a stream socket on standard input and output (the frames are
// described in GuestfsWire), and serves each image to it over an NBD unix socket: the
// helper cannot open any image itself.
//
// The helper refuses to run as root or with any capability. When the daemon goes away
// (or kills the appliance by shutting the socket down) the reader thread kills qemu and
// the helper exits.
import BlockingThreads
import CGuestfs
import CLinux
import Dispatch
import FoundationEssentials
import Glibc
import Guestfs
import Synchronization

/// What the reader thread and the main thread share.
final class HelperState: Sendable {
    let requests = Mutex<[[UInt8]?]>([])
    let wake = DispatchSemaphore(value: 0)
    let killed = Mutex(false)
    /// The main thread's kernel id: libguestfs forks qemu (and its recovery process) from
    /// it, so they are listed in its `children` file even while the launch runs.
    let mainThread = Mutex<Int32>(0)

    func push(_ frame: [UInt8]?) {
        requests.withLock { $0.append(frame) }
        wake.signal()
    }

    func pop() -> [UInt8]? {
        wake.wait()
        return requests.withLock { $0.removeFirst() }
    }

    /// The daemon is gone, cancelled the work, or closed the socket after its `shutdown`
    /// request: qemu (and libguestfs' recovery process) are killed now, whatever the main
    /// thread is doing, and the main thread then ends the helper.
    func daemonGone() {
        killed.withLock { $0 = true }
        let tid = mainThread.withLock { $0 }
        if let list = try? String(contentsOfFile: "/proc/self/task/\(tid)/children", encoding: .utf8) {
            for child in list.split(separator: " ").compactMap({ Int32($0) }) { kill(child, SIGKILL) }
        }
        push(nil)
    }
}

func fail(_ message: String) -> Never {
    let line = "multiverse-guestfs: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(2)
}

/// Started as root by the daemon, the helper becomes the appliance user before anything
/// else: groups, then gid, then uid, which clears every
/// capability. Nothing has run yet but the argument parsing; one thread only.
func dropPrivileges(_ options: Options) {
    guard getuid() == 0 || geteuid() == 0 else {
        if let uid = options.uid, uid != getuid() { fail("--uid \(uid) needs root") }
        return
    }
    guard let uid = options.uid, let gid = options.gid, uid != 0, gid != 0 else {
        fail("started as root without a non-root --uid and --gid")
    }
    let groups = options.groups
    guard groups.withUnsafeBufferPointer({ setgroups(groups.count, $0.baseAddress) }) == 0 else { fail("setgroups failed (errno \(errno))") }
    // As root, setgid and setuid set the real, effective and saved ids together.
    guard setgid(gid) == 0 else { fail("setgid(\(gid)) failed (errno \(errno))") }
    guard setuid(uid) == 0, getuid() == uid, geteuid() == uid else { fail("setuid(\(uid)) failed (errno \(errno))") }
}

/// The helper runs only unprivileged: not root, no capability in any set.
func checkUnprivileged() {
    guard getuid() != 0, geteuid() != 0, getgid() != 0, getegid() != 0 else {
        fail("refusing to run as root (the daemon starts this helper as its appliance user)")
    }
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
        fail("cannot read /proc/self/status")
    }
    for line in status.split(separator: "\n") where ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"].contains(where: { line.hasPrefix($0) }) {
        guard line.split(separator: "\t").last?.allSatisfy({ $0 == "0" }) == true else {
            fail("refusing to run with capabilities (\(line))")
        }
    }
    // Nothing this helper or qemu executes may gain privileges (setuid or file capabilities).
    guard mv_set_no_new_privs() == 0 else { fail("PR_SET_NO_NEW_PRIVS failed") }
}

struct Options {
    var backend = "direct"
    var backendSettings: [String] = []
    var memoryMiB: Int32?
    var uid: uid_t?
    var gid: gid_t?
    var groups: [gid_t] = []

    init(_ arguments: ArraySlice<String>) {
        var i = arguments.startIndex
        func value() -> String {
            i += 1
            guard i < arguments.endIndex else { fail("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        while i < arguments.endIndex {
            switch arguments[i] {
            case "--backend": backend = value()
            case "--backend-setting": backendSettings.append(value())
            case "--memsize":
                guard let n = Int32(value()) else { fail("--memsize takes MiB") }
                memoryMiB = n
            case "--uid":
                guard let n = uid_t(value()) else { fail("--uid takes a number") }
                uid = n
            case "--gid":
                guard let n = gid_t(value()) else { fail("--gid takes a number") }
                gid = n
            case "--group":
                guard let n = gid_t(value()) else { fail("--group takes a number") }
                groups.append(n)
            case "--help":
                print("""
                    usage: multiverse-guestfs [--uid N --gid N [--group N]...] [--backend NAME]
                                              [--backend-setting S]... [--memsize MIB]
                    The libguestfs appliance helper of multiverse-controllerd. The daemon starts it as
                    root with the appliance user's ids, which it takes before anything else (it refuses
                    to go on as root or with any capability); it then speaks on standard input and
                    output, one libguestfs call per request.
                    """)
                exit(0)
            default: fail("unknown argument \(arguments[i])")
            }
            i += 1
        }
    }
}

let options = Options(CommandLine.arguments.dropFirst())
dropPrivileges(options)
checkUnprivileged()
signal(SIGPIPE, SIG_IGN)

guard let g = guestfs_create() else { fail("could not create a libguestfs handle") }
guestfs_set_error_handler(g, nil, nil)
_ = guestfs_set_backend(g, options.backend)
withCStringArray(options.backendSettings) { _ = guestfs_set_backend_settings(g, $0) }
if let memory = options.memoryMiB { _ = guestfs_set_memsize(g, memory) }

let state = HelperState()
state.mainThread.withLock { $0 = mv_gettid() }
let appliance = Appliance(g, killed: { state.killed.withLock { $0 } })
appliance.onProgress { position, total in
    var w = WireWriter()
    w.int(position)
    w.int(total)
    _ = GuestfsWire.send(1, [GuestfsWire.ReplyKind.progress.rawValue] + w.bytes)
}

NamedThread.start("reader") {
    while let frame = GuestfsWire.receive(0) { state.push(frame) }
    state.daemonGone()
}

while let frame = state.pop() {
    var r = WireReader(frame)
    var w = WireWriter()
    var reply: [UInt8]
    do {
        guard let call = GuestfsCall(rawValue: try r.string()) else { throw GuestfsError(function: "request", message: "unknown call") }
        try appliance.answer(call, &r, &w)
        reply = [GuestfsWire.ReplyKind.result.rawValue] + w.bytes
    } catch let error as GuestfsError {
        var e = WireWriter()
        e.string(error.function)
        e.string(error.message)
        e.int(error.errno)
        reply = [GuestfsWire.ReplyKind.error.rawValue] + e.bytes
    } catch {
        var e = WireWriter()
        e.string("request")
        e.string("malformed request")
        e.int(Int32(EINVAL))
        reply = [GuestfsWire.ReplyKind.error.rawValue] + e.bytes
    }
    if !GuestfsWire.send(1, reply) { break }
}
appliance.shutdown()
appliance.close()
exit(0)
