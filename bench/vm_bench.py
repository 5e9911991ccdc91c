#!/usr/bin/python3
"""VM benchmark: multiverse-controllerd vs libvirt-dbus, both on libvirt's test driver
holding the same number of domains (default 1000), in one run on one private bus.

Run by bench/run (DBUS_SYSTEM_BUS_ADDRESS set, both services up). Figures:
  - define: DefineVMFromXML vs libvirt-dbus DomainDefineXML, per call; beside them, the
    polkit CheckAuthorization that every privileged call of ours makes (asked directly by
    this client: the bench's libvirt-dbus runs the test driver and asks polkit nothing)
  - ListVMs, GetManagedObjects and a VM property Get (ours) against ListDomains and a
    Domain property Get (libvirt-dbus), interleaved in rounds so noise hits both alike
  - 20 concurrent callers (own connections, threads) doing property Gets, first idle, then
    while StartAll starts all the VMs (a job making thousands of libvirt calls): p50/p99
"""

import argparse
import json
import math
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/run uses python3 -I
import procmem  # noqa: E402

import dbus

OURS = "org.multiverse.Controller"
ROOT = "/org/multiverse/Controller"
MANAGER = "org.multiverse.Controller.Manager"
VM = "org.multiverse.Controller.VM"
JOB = "org.multiverse.Controller.Job"
LIBVIRT = "org.libvirt"
LIBVIRT_PATH = "/org/libvirt/Test"
CONNECT = "org.libvirt.Connect"
DOMAIN = "org.libvirt.Domain"
PROPS = "org.freedesktop.DBus.Properties"
POLKIT = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_AUTHORITY = "org.freedesktop.PolicyKit1.Authority"
OM = "org.freedesktop.DBus.ObjectManager"
TIMEOUT = 120.0


def connect():
    return dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])


def call(conn, dest, path, iface, method, sig="", args=()):
    return conn.call_blocking(dest, path, iface, method, sig, args, timeout=TIMEOUT)


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    return s[max(1, math.ceil(p / 100.0 * len(s))) - 1]


def summary(ns):
    return {"n": len(ns), "p50_ms": pct(ns, 50) / 1e6, "p99_ms": pct(ns, 99) / 1e6}


def domain_xml(name):
    return ("<domain type='test'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type>hvm</type></os></domain>" % name)


# The service's metadata goes in DefineVMFromXML's options (caller XML may not carry it).
DEFINE_OPTIONS = {"profile": "app", "autostart": True}


def timed(fn):
    t = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t


def hammer(path, seconds, stop_when=None):
    """20 threads, each its own connection, Get(Name) in a loop; returns all latencies."""
    results, lock = [], threading.Lock()
    deadline = time.monotonic() + seconds

    def worker():
        c = connect()
        mine = []
        while time.monotonic() < deadline and not (stop_when and stop_when.is_set()):
            mine.append(timed(lambda: call(c, OURS, path, PROPS, "Get", "ss", (VM, "Name"))))
        with lock:
            results.extend(mine)
        c.close()

    threads = [threading.Thread(target=worker) for _ in range(ARGS.concurrent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main():
    conn = connect()
    n = ARGS.vms
    # Before any VM: the per-VM figure is the growth from here, divided by n.
    mem_before = {"ours": procmem.memory_kb(ARGS.ours_pid), "theirs": procmem.memory_kb(ARGS.libvirt_pid)}
    print("vm_bench: defining %d VMs on each side" % n, file=sys.stderr, flush=True)
    ours_define, theirs_define, polkit_checks = [], [], []
    subject = ("system-bus-name", {"name": dbus.String(conn.get_unique_name())})
    for i in range(n):
        name = "bench-%04d" % i
        ours_define.append(timed(lambda: call(conn, OURS, ROOT, MANAGER, "DefineVMFromXML", "sa{sv}", (domain_xml(name), DEFINE_OPTIONS))))
        theirs_define.append(timed(lambda: call(conn, LIBVIRT, LIBVIRT_PATH, CONNECT, "DomainDefineXML", "s", (domain_xml(name),))))
        polkit_checks.append(timed(lambda: call(conn, POLKIT, POLKIT_PATH, POLKIT_AUTHORITY, "CheckAuthorization", "(sa{sv})sa{ss}us",
                                                (subject, "org.multiverse.controller.vm.configure",
                                                 {"vm": name, "operation": "define-xml"}, 0, ""))))
    vm_path = call(conn, OURS, ROOT, MANAGER, "GetVMByName", "sa{sv}", ("bench-0500" if n > 500 else "bench-0000", {}))
    dom_path = call(conn, LIBVIRT, LIBVIRT_PATH, CONNECT, "DomainLookupByName", "s", ("bench-0500" if n > 500 else "bench-0000",))
    listed = len(call(conn, OURS, ROOT, MANAGER, "ListVMs", "a{sv}", ({},)))
    theirs_listed = len(call(conn, LIBVIRT, LIBVIRT_PATH, CONNECT, "ListDomains", "u", (0,)))

    benches = {
        "ListVMs (ours)": lambda: call(conn, OURS, ROOT, MANAGER, "ListVMs", "a{sv}", ({},)),
        "GetManagedObjects (ours)": lambda: call(conn, OURS, ROOT, OM, "GetManagedObjects"),
        "VM Get Name (ours)": lambda: call(conn, OURS, vm_path, PROPS, "Get", "ss", (VM, "Name")),
        "ListDomains (libvirt-dbus)": lambda: call(conn, LIBVIRT, LIBVIRT_PATH, CONNECT, "ListDomains", "u", (0,)),
        "Domain Get Name (libvirt-dbus)": lambda: call(conn, LIBVIRT, dom_path, PROPS, "Get", "ss", (DOMAIN, "Name")),
    }
    samples = {k: [] for k in benches}
    names = list(benches)
    for r in range(ARGS.iterations // ARGS.block):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            for _ in range(ARGS.block):
                samples[k].append(timed(benches[k]))

    idle = hammer(vm_path, ARGS.seconds)
    # Like with like: both sides now hold n defined, stopped VMs and have served the same
    # calls. (After StartAll our libvirt connection, an in-process test driver here, also
    # holds n running domains and libvirt-dbus's does not, so that figure is not compared.)
    mem_defined = {"ours": procmem.memory_kb(ARGS.ours_pid), "theirs": procmem.memory_kb(ARGS.libvirt_pid)}
    # A slow libvirt operation in flight: StartAll starts every VM (a job of n starts).
    job = call(conn, OURS, ROOT, MANAGER, "StartAll", "a{sv}", ({},))
    t0 = time.monotonic()
    done = threading.Event()

    def watch():
        c = connect()
        while True:
            state = call(c, OURS, job, PROPS, "Get", "ss", (JOB, "State"))
            if state != "running":
                done.set()
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    busy = hammer(vm_path, 60, stop_when=done)
    done.wait(120)
    job_s = time.monotonic() - t0
    job_state = call(conn, OURS, job, PROPS, "Get", "ss", (JOB, "State"))

    out = {"vms": n, "ours_listed": listed, "theirs_listed": theirs_listed,
           "define_ours": summary(ours_define), "define_theirs": summary(theirs_define),
           "polkit_check": summary(polkit_checks),
           "calls": {k: summary(v) for k, v in samples.items()},
           "concurrent_idle": summary(idle), "concurrent_busy": summary(busy),
           "startall_seconds": job_s, "startall_state": str(job_state),
           "memory_kb_before": mem_before, "memory_kb": mem_defined,
           "memory_kb_ours_after_startall": procmem.memory_kb(ARGS.ours_pid)}
    per_vm = {side: (mem_defined[side]["uss"] - mem_before[side]["uss"]) / float(n) if n else None
              for side in ("ours", "theirs")}
    out["uss_kb_per_vm"] = per_vm

    print()
    print("VMs: %d defined on each side (ours lists %d, libvirt-dbus %d)" % (n, listed, theirs_listed))
    print("  %-34s %10s %10s" % ("call", "p50 ms", "p99 ms"))
    rows = [("DefineVMFromXML (ours)", out["define_ours"]), ("DomainDefineXML (libvirt-dbus)", out["define_theirs"]),
            ("polkit CheckAuthorization", out["polkit_check"])]
    rows += [(k, out["calls"][k]) for k in names]
    for k, s in rows:
        print("  %-34s %10.3f %10.3f" % (k, s["p50_ms"], s["p99_ms"]))
    lv = out["calls"]["ListVMs (ours)"]["p50_ms"] / out["calls"]["ListDomains (libvirt-dbus)"]["p50_ms"]
    gv = out["calls"]["VM Get Name (ours)"]["p50_ms"] / out["calls"]["Domain Get Name (libvirt-dbus)"]["p50_ms"]
    print("  ratio ListVMs/ListDomains p50 %.2fx (target <= 0.5x); property Get p50 %.2fx (target <= 1x)" % (lv, gv))
    ci, cb = out["concurrent_idle"], out["concurrent_busy"]
    print("  %d concurrent callers, VM Get: idle p50 %.3f / p99 %.3f ms (%d calls); during StartAll of %d VMs (%.1f s, %s) p50 %.3f / p99 %.3f ms (%d calls)"
          % (ARGS.concurrent, ci["p50_ms"], ci["p99_ms"], ci["n"], n, job_s, job_state, cb["p50_ms"], cb["p99_ms"], cb["n"]))
    for side, label in (("ours", "ours"), ("theirs", "libvirt-dbus")):
        print("  memory with %d VMs defined, %-12s %s  (before the VMs: USS %.1f MB; %.1f kB USS per VM)"
              % (n, label + ":", procmem.describe(out["memory_kb"][side]), mem_before[side]["uss"] / 1024.0, per_vm[side] or 0))
    print("  memory of ours after StartAll (%d running domains in its test driver): %s"
          % (n, procmem.describe(out["memory_kb_ours_after_startall"])))
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--concurrent", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--ours-pid", type=int, required=True)
    ap.add_argument("--libvirt-pid", type=int, required=True)
    ap.add_argument("--json")
    ARGS = ap.parse_args()
    main()
