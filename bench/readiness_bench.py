#!/usr/bin/python3
"""Readiness figures with tiny guests on qemu:///system (TCG): the host's kernel and the
tests' busybox initramfs (scripts/make-tiny-guest), defined through the daemon.

Run by bench/run (DBUS_SYSTEM_BUS_ADDRESS set, the daemon up on qemu:///system). Figures:
  - READY=1 to the Ready signal: one guest answers each token the bench writes on a second
    virtio-serial port (bench.ping.0, its socket made by libvirt) either by echoing it
    back (the port's round trip, RTT) or by writing STOPPING=1 and READY=1 to the
    readiness port; each READY=1 makes the guest ready again and the daemon sends Ready().
    The time from writing the token to seeing the signal (through `mvctl vm watch
    --json`, which also reads the VM's properties) includes one trip host -> guest on
    the ping port; the figure reported subtracts half the median RTT and is printed
    beside the raw one. Target: p99 < 50 ms.
  - StartAll for a router and an interface controller against their boots alone: each
    started alone with Start and timed to its Ready(); then both with autostart and
    StartAll timed to the job's end. Target: StartAll <= the sum + 1 s.
  - idle CPU of the daemon with N guests running and their channels connected (every
    guest ready and then silent): utime+stime from /proc/PID/stat over a window.
    Target: about 0 (the daemon polls nothing).
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/run uses python3 -I
from settings_bench import cpu_seconds, percentile  # noqa: E402

import dbus  # noqa: E402

OURS = "org.multiverse.Controller"
ROOT = "/org/multiverse/Controller"
MANAGER = "org.multiverse.Controller.Manager"
VM = "org.multiverse.Controller.VM"
JOB = "org.multiverse.Controller.Job"
PROPS = "org.freedesktop.DBus.Properties"
VIRSH = "/usr/bin/virsh"
URI = "qemu:///system"
PREFIX = "mvbench-"


def virsh(*args):
    return subprocess.run([VIRSH, "-c", URI] + list(args), capture_output=True, text=True)


def tiny_xml(name, guest_dir, cmdline, boot_order=2, autostart=False, memory_mib=96, ping=False):
    """The tiny guest's domain XML and the DefineVMFromXML options that carry the service's
    metadata (caller XML may not)."""
    extra = ("<channel type='unix'><source mode='bind'/><target type='virtio' name='bench.ping.0'/></channel>"
             if ping else "")
    options = {"boot_order": dbus.UInt32(boot_order), "autostart": dbus.Boolean(autostart)}
    return options, f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{guest_dir}/vmlinuz</kernel><initrd>{guest_dir}/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet {cmdline}</cmdline></os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices><serial type='pty'/><console type='pty'/><memballoon model='none'/>{extra}</devices>
</domain>"""


class Client:
    def __init__(self):
        self.conn = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])

    def manager(self, method, sig, *args):
        return self.conn.call_blocking(OURS, ROOT, MANAGER, method, sig, args, timeout=600)

    def vm(self, path, method, sig, *args):
        return self.conn.call_blocking(OURS, path, VM, method, sig, args, timeout=600)

    def prop(self, path, iface, name):
        return self.conn.call_blocking(OURS, path, PROPS, "Get", "ss", (iface, name), timeout=60)

    def define(self, options_and_xml):
        options, xml = options_and_xml
        return str(self.manager("DefineVMFromXML", "sa{sv}", xml, dbus.Dictionary(options, signature="sv")))

    def path(self, name):
        return str(self.manager("GetVMByName", "sa{sv}", name, dbus.Dictionary({}, signature="sv")))

    def start(self, path):
        self.vm(path, "Start", "a{sv}", dbus.Dictionary({}, signature="sv"))

    def wait_job(self, job, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = str(self.prop(job, JOB, "State"))
            if state != "running":
                return state, str(self.prop(job, JOB, "Error"))
            time.sleep(0.05)
        return "timeout", ""


class Watcher:
    """`mvctl vm watch --json`: every line stamped with time.monotonic() on arrival."""

    def __init__(self, mvctl, address):
        self.proc = subprocess.Popen([mvctl, "vm", "watch", "--json", "--bus-address", address],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.events = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(1.0)  # subscribed before the first measurement

    def _read(self):
        for line in self.proc.stdout:
            now = time.monotonic()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.events.append((now, event))
                self.cv.notify_all()

    def wait_ready(self, vm, after, timeout):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for t, e in self.events:
                    if t >= after and e.get("vm") == vm and e.get("state") == "ready":
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(left)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def ping_socket(name):
    xml = virsh("dumpxml", name).stdout
    m = re.search(r"<source mode='bind' path='([^']+bench\.ping\.0)'", xml)
    if not m:
        raise SystemExit(f"readiness bench: no bench.ping.0 socket in the live XML of {name}")
    return m.group(1)


def latency(client, watcher, guest_dir, samples):
    name = PREFIX + "ping"
    path = client.define(tiny_xml(name, guest_dir, "mv.bench=1 mv.status=bench", ping=True))
    client.start(path)
    if not wait_for(lambda: bool(client.prop(path, VM, "Ready")), 120):
        raise SystemExit("readiness bench: the ping guest never became ready")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(ping_socket(name))
    sock.settimeout(10)
    reader = sock.makefile("r")
    rtt, raw = [], []
    # Echo round trips first, then READY=1 tokens; 4 per second keeps the guest well
    # inside the channel's budget (20 lines/s: each token costs 2 lines).
    for i in range(samples):
        t0 = time.monotonic()
        sock.sendall(f"E{i}\n".encode())
        if reader.readline().strip() != f"E{i}":
            raise SystemExit(f"readiness bench: the ping guest did not echo E{i}")
        rtt.append((time.monotonic() - t0) * 1000)
        time.sleep(0.05)
    missed = 0
    for i in range(samples):
        t0 = time.monotonic()
        sock.sendall(f"R{i}\n".encode())
        t = watcher.wait_ready(name, t0, 5)
        if t is None:
            missed += 1
        else:
            raw.append((t - t0) * 1000)
        time.sleep(0.25)
    sock.close()
    half = percentile(rtt, 50) / 2
    net = [max(0.0, v - half) for v in raw]
    return {"samples": samples, "missed": missed, "rtt_ms": summary(rtt), "raw_ms": summary(raw), "ready_ms": summary(net)}


def summary(values):
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values, default=None), "n": len(values)}


def boot_alone(client, watcher, path, name):
    t0 = time.monotonic()
    client.start(path)
    t = watcher.wait_ready(name, t0, 180)
    if t is None:
        raise SystemExit(f"readiness bench: {name} never sent READY=1")
    virsh("destroy", name)
    wait_for(lambda: str(client.prop(path, VM, "State")) == "shutoff", 30)
    return t - t0


def start_all_pair(client, watcher, guest_dir):
    router, desk = PREFIX + "router", PREFIX + "desk"
    paths = {n: client.define(tiny_xml(n, guest_dir, f"mv.status={n}", boot_order=o, autostart=True))
             for n, o in ((router, 0), (desk, 1))}
    alone = {n: boot_alone(client, watcher, paths[n], n) for n in (router, desk)}
    t0 = time.monotonic()
    job = str(client.manager("StartAll", "a{sv}", dbus.Dictionary({}, signature="sv")))
    state, error = client.wait_job(job, 600)
    wall = time.monotonic() - t0
    if state != "succeeded":
        raise SystemExit(f"readiness bench: StartAll {state}: {error}")
    for n in (router, desk):
        virsh("destroy", n)
    return {"router_alone_s": alone[router], "desk_alone_s": alone[desk], "sum_s": alone[router] + alone[desk],
            "start_all_s": wall}


def idle_cpu(client, guest_dir, pid, count, seconds):
    paths = [client.define(tiny_xml(f"{PREFIX}idle{i}", guest_dir, "mv.status=idle", memory_mib=96))
             for i in range(count)]
    for p in paths:
        client.start(p)
    if not wait_for(lambda: all(bool(client.prop(p, VM, "Ready")) for p in paths), 600, interval=1):
        ready = sum(bool(client.prop(p, VM, "Ready")) for p in paths)
        late = [f"{PREFIX}idle{i} ({client.prop(p, VM, 'State')}, {client.prop(p, VM, 'Readiness')})"
                for i, p in enumerate(paths) if not bool(client.prop(p, VM, "Ready"))]
        raise SystemExit(f"readiness bench: only {ready} of {count} idle guests became ready; not: {', '.join(late)}")
    time.sleep(2)
    c0 = cpu_seconds(pid)
    time.sleep(seconds)
    cpu = cpu_seconds(pid) - c0
    return {"guests": count, "seconds": seconds, "cpu_s": cpu}


def cleanup():
    for line in virsh("list", "--all", "--name").stdout.split():
        if line.startswith(PREFIX):
            virsh("destroy", line)
            virsh("undefine", line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest-dir", required=True, help="scripts/make-tiny-guest's output")
    ap.add_argument("--mvctl", required=True)
    ap.add_argument("--ours-pid", type=int, required=True)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--json")
    a = ap.parse_args()
    client = Client()
    watcher = Watcher(a.mvctl, os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
    cleanup()
    try:
        lat = latency(client, watcher, a.guest_dir, a.samples)
        print(f"readiness: READY=1 to Ready(), {lat['raw_ms']['n']} of {a.samples}: p50 {lat['ready_ms']['p50']:.1f} ms, "
              f"p99 {lat['ready_ms']['p99']:.1f} ms (raw, with the trip to the guest: p50 {lat['raw_ms']['p50']:.1f} ms, "
              f"p99 {lat['raw_ms']['p99']:.1f} ms; ping port RTT p50 {lat['rtt_ms']['p50']:.1f} ms); target p99 < 50 ms", flush=True)
        cleanup()
        pair = start_all_pair(client, watcher, a.guest_dir)
        print(f"readiness: StartAll of a router and a controller {pair['start_all_s']:.2f} s; their boots alone "
              f"{pair['router_alone_s']:.2f} s + {pair['desk_alone_s']:.2f} s = {pair['sum_s']:.2f} s; target <= the sum + 1 s", flush=True)
        cleanup()
        idle = idle_cpu(client, a.guest_dir, a.ours_pid, a.channels, a.idle_seconds)
        print(f"readiness: daemon CPU with {idle['guests']} connected channels over {idle['seconds']:.0f} s idle: "
              f"{idle['cpu_s']:.2f} s ({100 * idle['cpu_s'] / idle['seconds']:.3f} %)", flush=True)
    finally:
        watcher.stop()
        cleanup()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"readiness": lat, "start_all_pair": pair, "idle": idle}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
