#!/usr/bin/python3
"""D-Bus latency and idle-RSS benchmark: multiverse-controllerd vs libvirt-dbus.

Run by bench/run, which starts the private bus (scripts/stack --libvirt-dbus) and the
daemon and sets DBUS_SYSTEM_BUS_ADDRESS. Needs Debian's /usr/bin/python3 (python3-dbus).

Every call goes through ONE long-lived dbus-python connection with the same code
(Connection.call_blocking, no proxy objects, no introspection) for both peers. The
calls of all benchmarks are interleaved in rounds of --block calls, with the order of
the benchmarks rotated every round, so machine noise hits both peers alike.
"""

import argparse
import gc
import json
import math
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/run uses python3 -I
import procmem  # noqa: E402

try:
    import dbus
except ImportError:  # pragma: no cover
    sys.exit("dbus_bench: python3-dbus missing: run with /usr/bin/python3 (apt-get install -y python3-dbus)")

OURS = "org.multiverse.Controller"
OURS_PATH = "/org/multiverse/Controller"
MANAGER = "org.multiverse.Controller.Manager"
LIBVIRT = "org.libvirt"
LIBVIRT_PATH = "/org/libvirt/Test"
PEER = "org.freedesktop.DBus.Peer"
PROPS = "org.freedesktop.DBus.Properties"
TIMEOUT_S = 60.0
SLOW_US = 10_000  # a call slower than this is counted as "slow"


def log(msg):
    print("dbus_bench: " + msg, file=sys.stderr, flush=True)


def rss(pid):
    """RSS, PSS, USS (kB) and threads of pid: see procmem.py."""
    return procmem.memory_kb(pid)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def stats(samples_ns):
    s = sorted(samples_ns)
    n = len(s)
    us = lambda ns: ns / 1000.0  # noqa: E731
    return {
        "n": n,
        "p50_us": us(percentile(s, 50)),
        "p99_us": us(percentile(s, 99)),
        "mean_us": us(sum(s) / n) if n else float("nan"),
        "min_us": us(s[0]) if n else float("nan"),
        "max_us": us(s[-1]) if n else float("nan"),
        "slow_calls": sum(1 for v in s if v > SLOW_US * 1000),
    }


class Bench:
    def __init__(self, call, peer, fn, check):
        self.call, self.peer, self.fn, self.check = call, peer, fn, check
        self.samples = []
        self.errors = 0
        self.first_error = None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours-pid", type=int, required=True, help="pid of multiverse-controllerd")
    ap.add_argument("--libvirt-pid", type=int, required=True, help="pid of libvirt-dbus")
    ap.add_argument("--iterations", type=int, default=2000, help="measured calls per benchmark (default 2000)")
    ap.add_argument("--warmup", type=int, default=100, help="unmeasured calls per benchmark first (default 100)")
    ap.add_argument("--disks", type=int, default=100, help="disks to create before ListDisks (default 100)")
    ap.add_argument("--block", type=int, default=20, help="consecutive calls per benchmark in a round (default 20)")
    ap.add_argument("--idle", type=float, default=2.0, help="idle pause before reading RSS, s (default 2)")
    ap.add_argument("--daemon", default="", help="daemon binary (for the report only)")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    a = ap.parse_args()
    if a.iterations < 1 or a.warmup < 0 or a.disks < 0 or a.block < 1:
        ap.error("--iterations/--block must be >= 1, --warmup/--disks >= 0")
    if "DBUS_SYSTEM_BUS_ADDRESS" not in os.environ:
        ap.error("DBUS_SYSTEM_BUS_ADDRESS is not set (bench/run sets it)")

    daemon_real = os.path.realpath(a.daemon) if a.daemon else ""
    build = "release" if "/release/" in daemon_real else "debug" if "/debug/" in daemon_real else "unknown"

    # Our daemon's RSS right after start-up: first thing, before this connection does anything.
    rss_start = rss(a.ours_pid)

    bus = dbus.SystemBus()

    def call(dest, path, iface, member, sig="", args=()):
        return bus.call_blocking(dest, path, iface, member, sig, args, timeout=TIMEOUT_S)

    empty_opts = dbus.Dictionary({}, signature="sv")

    # --- setup: N disks through the API -----------------------------------------------
    create_ns = []
    if a.disks:
        log("creating %d qcow2 disks through CreateDisk" % a.disks)
    for i in range(a.disks):
        name = "bench-%05d" % i
        t0 = time.perf_counter_ns()
        path = call(OURS, OURS_PATH, MANAGER, "CreateDisk", "stsa{sv}",
                    (name, dbus.UInt64(1 << 30), "qcow2", empty_opts))
        create_ns.append(time.perf_counter_ns() - t0)
        if not str(path).startswith(OURS_PATH + "/"):
            sys.exit("dbus_bench: CreateDisk %s returned unexpected path %r" % (name, path))
    listed = call(OURS, OURS_PATH, MANAGER, "ListDisks", "a{sv}", (empty_opts,))
    if len(listed) != a.disks:
        sys.exit("dbus_bench: ListDisks returned %d paths, expected %d" % (len(listed), a.disks))

    # --- libvirt-dbus: the test driver's domain ---------------------------------------
    domains = call(LIBVIRT, LIBVIRT_PATH, "org.libvirt.Connect", "ListDomains", "u", (dbus.UInt32(0),))
    if not domains:
        sys.exit("dbus_bench: org.libvirt.Connect.ListDomains returned no domain on " + LIBVIRT_PATH)
    dom = None
    for d in domains:
        if str(call(LIBVIRT, d, PROPS, "Get", "ss", ("org.libvirt.Domain", "Name"))) == "test":
            dom = str(d)
            break
    if dom is None:
        dom = str(domains[0])
    dom_name = str(call(LIBVIRT, dom, PROPS, "Get", "ss", ("org.libvirt.Domain", "Name")))
    version = str(call(OURS, OURS_PATH, PROPS, "Get", "ss", (MANAGER, "Version")))
    log("our Version %r; libvirt-dbus test domain %s (%r)" % (version, dom, dom_name))

    # --- benchmarks ----------------------------------------------------------------------
    ndisks = a.disks

    def is_none(r):
        return r is None

    benches = [
        Bench("Peer.Ping", "ours",
              lambda: call(OURS, OURS_PATH, PEER, "Ping"), is_none),
        Bench("Properties.Get Version", "ours",
              lambda: call(OURS, OURS_PATH, PROPS, "Get", "ss", (MANAGER, "Version")),
              lambda r: str(r) == version),
        Bench("ListDisks (%d disks)" % ndisks, "ours",
              lambda: call(OURS, OURS_PATH, MANAGER, "ListDisks", "a{sv}", (empty_opts,)),
              lambda r: len(r) == ndisks),
        Bench("Peer.Ping", "libvirt-dbus",
              lambda: call(LIBVIRT, LIBVIRT_PATH, PEER, "Ping"), is_none),
        Bench("Properties.Get Domain.Name", "libvirt-dbus",
              lambda: call(LIBVIRT, dom, PROPS, "Get", "ss", ("org.libvirt.Domain", "Name")),
              lambda r: str(r) == dom_name),
    ]

    def run_rounds(per_bench, record):
        """per_bench calls of every benchmark, in rounds of a.block, order rotated per round."""
        done = 0
        rnd = 0
        while done < per_bench:
            k = min(a.block, per_bench - done)
            order = benches[rnd % len(benches):] + benches[:rnd % len(benches)]
            for b in order:
                fn, check = b.fn, b.check
                for _ in range(k):
                    t0 = time.perf_counter_ns()
                    try:
                        r = fn()
                        ok = check(r)
                        err = None if ok else "unexpected reply %r" % (r,)
                    except dbus.exceptions.DBusException as e:
                        err = "%s: %s" % (e.get_dbus_name(), e.get_dbus_message())
                    dt = time.perf_counter_ns() - t0
                    if err is None:
                        if record:
                            b.samples.append(dt)
                    else:
                        b.errors += 1
                        if b.first_error is None:
                            b.first_error = err
            done += k
            rnd += 1

    log("warm-up: %d calls per benchmark" % a.warmup)
    gc.collect()
    gc.disable()  # no collector pauses inside timed calls (same for both peers)
    try:
        run_rounds(a.warmup, record=False)
        log("measuring: %d calls per benchmark, interleaved in rounds of %d" % (a.iterations, a.block))
        t_start = time.monotonic()
        run_rounds(a.iterations, record=True)
        t_measure = time.monotonic() - t_start
    finally:
        gc.enable()

    # --- idle RSS (libvirt-dbus has used its test driver by now) ------------------------
    time.sleep(a.idle)
    rss_ours = rss(a.ours_pid)
    rss_lv = rss(a.libvirt_pid)

    # --- report --------------------------------------------------------------------------
    results = []
    for b in benches:
        st = stats(b.samples) if b.samples else {"n": 0}
        st.update({"call": b.call, "peer": b.peer, "errors": b.errors, "first_error": b.first_error})
        results.append(st)

    def find(call_prefix, peer):
        for r in results:
            if r["call"].startswith(call_prefix) and r["peer"] == peer and r["n"]:
                return r
        return None

    ratios = {}
    for label, ours_call, lv_call in (("Peer.Ping", "Peer.Ping", "Peer.Ping"),
                                      ("Properties.Get", "Properties.Get", "Properties.Get")):
        o, l = find(ours_call, "ours"), find(lv_call, "libvirt-dbus")
        if o and l:
            ratios[label] = {k: o[k + "_us"] / l[k + "_us"] for k in ("p50", "p99", "mean")}

    mb = lambda kb: kb / 1024.0  # noqa: E731
    create = stats(create_ns) if create_ns else None

    lines = []
    lines.append("multiverse-controllerd %s (%s build): %s" % (version, build, a.daemon or "?"))
    if build != "release":
        lines.append("NOTE: not a release build - these figures are a smoke test, not a benchmark.")
    lines.append("%d calls per row after %d warm-up calls; one python-dbus connection; rounds of %d, "
                 "order rotated; %.1f s; %d CPUs; kernel %s"
                 % (a.iterations, a.warmup, a.block, t_measure, os.cpu_count() or 0, platform.release()))
    lines.append("")
    hdr = "%-28s %-13s %10s %10s %10s %10s %6s" % ("call", "peer", "p50 µs", "p99 µs", "mean µs", "max µs", "errors")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for r in results:
        if r["n"]:
            lines.append("%-28s %-13s %10.1f %10.1f %10.1f %10.1f %6d"
                         % (r["call"], r["peer"], r["p50_us"], r["p99_us"], r["mean_us"], r["max_us"], r["errors"]))
        else:
            lines.append("%-28s %-13s %10s %10s %10s %10s %6d"
                         % (r["call"], r["peer"], "-", "-", "-", "-", r["errors"]))
    lines.append("")
    for label, rt in ratios.items():
        lines.append("ratio ours/libvirt-dbus %-15s p50 %5.2fx   p99 %5.2fx   mean %5.2fx"
                     % (label, rt["p50"], rt["p99"], rt["mean"]))
    lines.append("")
    lines.append("memory multiverse-controllerd after start-up (no disks):  %s  (%d threads)"
                 % (procmem.describe(rss_start), rss_start.get("threads", 0)))
    lines.append("memory multiverse-controllerd idle (%d disks, after run): %s  (peak RSS %d kB, %d threads)"
                 % (ndisks, procmem.describe(rss_ours), rss_ours.get("hwm", 0), rss_ours.get("threads", 0)))
    lines.append("memory libvirt-dbus idle (test driver used, after run):  %s  (peak RSS %d kB, %d threads)"
                 % (procmem.describe(rss_lv), rss_lv.get("hwm", 0), rss_lv.get("threads", 0)))
    if create:
        lines.append("")
        lines.append("setup: %d x CreateDisk (qcow2, 1 GiB): p50 %.0f µs, mean %.0f µs, max %.0f µs"
                     % (create["n"], create["p50_us"], create["mean_us"], create["max_us"]))
    problems = []
    for r in results:
        if r["errors"]:
            problems.append("%s/%s: %d failed calls, first: %s" % (r["call"], r["peer"], r["errors"], r["first_error"]))
        if r.get("slow_calls"):
            problems.append("%s/%s: %d calls slower than %d ms (max %.1f ms)"
                            % (r["call"], r["peer"], r["slow_calls"], SLOW_US // 1000, r["max_us"] / 1000))
    if problems:
        lines.append("")
        lines.extend("WARNING: " + p for p in problems)
    print("\n".join(lines), flush=True)

    if a.json:
        doc = {
            "daemon": a.daemon, "daemon_realpath": daemon_real, "build": build, "version": version,
            "iterations": a.iterations, "warmup": a.warmup, "block": a.block, "disks": ndisks,
            "measure_seconds": t_measure, "cpus": os.cpu_count(), "kernel": platform.release(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "libvirt_domain": dom,
            "results": results, "ratios_ours_over_libvirt_dbus": ratios,
            "memory_kb": {"ours_startup": rss_start, "ours_idle": rss_ours, "libvirt_dbus_idle": rss_lv},
            "create_disk": create,
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        log("wrote " + a.json)
    return 1 if any(r["errors"] or not r["n"] for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except dbus.exceptions.DBusException as e:
        sys.exit("dbus_bench: D-Bus call failed: %s: %s" % (e.get_dbus_name(), e.get_dbus_message()))
