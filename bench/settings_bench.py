#!/usr/bin/python3 -I
"""Settings agent figures: revert latency after external changes, and idle CPU.

Run by bench/run (which starts the bus, the daemon on a sandbox host root with a
raised flap limit, and libvirt-dbus). Standalone:

  settings_bench.py --address ADDR --host-root DIR --mvctl PATH --ours-pid PID
                    [--peer-pid PID] [--drifts N] [--idle-seconds S] [--json FILE]

For each drift it makes a real change behind the daemon's back (gpasswd -Q ROOT -d user
kvm; sed -i deleting the 9pnet line of the modules file), then measures from the moment
the tool returned until (a) the file holds the desired state again and (b) the Reverted
signal reached a client (`mvctl settings watch --json`). The initramfs Reverted comes
after the rebuild (here a stand-in that returns at once, after the agent's 250 ms
coalescing delay). Idle CPU: utime+stime from /proc/PID/stat over the idle window.
"""
import argparse
import json
import os
import subprocess
import threading
import time


def percentile(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


class Watcher:
    """Reads `mvctl settings watch --json` and timestamps every line on arrival."""

    def __init__(self, mvctl, address):
        self.proc = subprocess.Popen([mvctl, "settings", "watch", "--json", "--bus-address", address],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.events = []
        self.lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.monotonic()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append((now, event))
                self.lock.notify_all()

    def wait(self, signal, setting, after, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for t, e in self.events:
                    if t >= after and e.get("signal") == signal and e.get("id") == setting:
                        return t, e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, None
                self.lock.wait(left)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def member(root, user, group):
    with open(os.path.join(root, "etc/group")) as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if parts[0] == group:
                return user in parts[3].split(",")
    return False


def module_listed(path, module):
    with open(path) as f:
        return any(line.strip() == module for line in f)


def measure(name, drifts, change, restored, watcher, setting):
    file_ms, signal_ms, failures = [], [], 0
    for _ in range(drifts):
        change()
        t_changed = time.monotonic()
        deadline = t_changed + 10
        while not restored() and time.monotonic() < deadline:
            time.sleep(0.001)
        t_file = time.monotonic()
        t_signal, event = watcher.wait("Reverted", setting, t_changed)
        if t_signal is None or not event.get("success") or t_file >= deadline:
            failures += 1
            continue
        file_ms.append((t_file - t_changed) * 1000)
        signal_ms.append((t_signal - t_changed) * 1000)
        time.sleep(0.05)
    return {"name": name, "file_ms": file_ms, "signal_ms": signal_ms, "failures": failures}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True)
    ap.add_argument("--host-root", required=True)
    ap.add_argument("--mvctl", required=True)
    ap.add_argument("--ours-pid", type=int, required=True)
    ap.add_argument("--peer-pid", type=int)
    ap.add_argument("--drifts", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--json")
    a = ap.parse_args()

    root = a.host_root
    modules = os.path.join(root, "etc/initramfs-tools/modules")
    watcher = Watcher(a.mvctl, a.address)
    time.sleep(1.0)  # the watcher's match is in place
    results = [
        measure("gpasswd -d user kvm", a.drifts,
                lambda: subprocess.run(["/usr/bin/gpasswd", "-Q", root, "-d", "user", "kvm"], check=True,
                                       stdout=subprocess.DEVNULL),
                lambda: member(root, "user", "kvm"), watcher, "user-groups"),
        measure("sed -i (delete 9pnet line)", a.drifts,
                lambda: subprocess.run(["/usr/bin/sed", "-i", "/^9pnet$/d", modules], check=True),
                lambda: module_listed(modules, "9pnet"), watcher, "initramfs-modules"),
    ]
    watcher.stop()

    time.sleep(2.0)  # let the last checks settle before the idle window
    ours0 = cpu_seconds(a.ours_pid)
    peer0 = cpu_seconds(a.peer_pid) if a.peer_pid else None
    time.sleep(a.idle_seconds)
    ours_cpu = cpu_seconds(a.ours_pid) - ours0
    peer_cpu = cpu_seconds(a.peer_pid) - peer0 if a.peer_pid else None

    print()
    print(f"settings: revert latency over {a.drifts} drifts each (from the tool's exit)")
    print(f"  {'change':<30} {'restored p50':>13} {'p99':>9} {'Reverted p50':>13} {'p99':>9} {'failed':>7}")
    for r in results:
        print(f"  {r['name']:<30} {percentile(r['file_ms'], 50):>10.1f} ms {percentile(r['file_ms'], 99):>6.1f} ms"
              f" {percentile(r['signal_ms'], 50):>10.1f} ms {percentile(r['signal_ms'], 99):>6.1f} ms {r['failures']:>7}")
    print(f"  (initramfs Reverted waits for the rebuild: 250 ms coalescing delay + a stand-in rebuild)")
    line = f"settings: idle CPU over {a.idle_seconds:.0f} s while watching: ours {ours_cpu:.2f} s ({100 * ours_cpu / a.idle_seconds:.3f} %)"
    if peer_cpu is not None:
        line += f", libvirt-dbus {peer_cpu:.2f} s ({100 * peer_cpu / a.idle_seconds:.3f} %)"
    print(line)

    if a.json:
        out = {"drifts": a.drifts, "idle_seconds": a.idle_seconds, "idle_cpu_seconds": ours_cpu,
               "peer_idle_cpu_seconds": peer_cpu, "latency": []}
        for r in results:
            out["latency"].append({
                "change": r["name"], "failures": r["failures"],
                "restored_ms": {"p50": percentile(r["file_ms"], 50), "p99": percentile(r["file_ms"], 99), "max": max(r["file_ms"], default=None)},
                "reverted_ms": {"p50": percentile(r["signal_ms"], 50), "p99": percentile(r["signal_ms"], 99), "max": max(r["signal_ms"], default=None)},
            })
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
