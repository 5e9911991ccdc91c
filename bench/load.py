#!/usr/bin/python3
"""Load: N concurrent clients, each with its own bus connection, making M mixed calls on
multiverse-controllerd: reads (ListDisks, GetDiskByName, property Get/GetAll,
GetManagedObjects, ListVMs, a VM's State), and writes (CreateDisk then Delete of the
client's own disk, SetAutostart on a VM of the test driver). Run it as a user polkit
authorizes and as one it does not: writes of the second are expected denials.

Prints one JSON object: calls, unexpected errors (with the first few messages),
timeouts, expected denials, and p50/p99 in ms per call kind.

DBUS_SYSTEM_BUS_ADDRESS must point at the bus. Used by the load test
(Tests/IntegrationTests/LoadTests.swift) and by hand:
  runuser -u USER -- bench/load.py --clients 25 --calls 200 --prefix u1 --disk shared --vm test
"""

import argparse
import json
import math
import os
import threading
import time

import dbus

OURS = "org.multiverse.Controller"
ROOT = "/org/multiverse/Controller"
MANAGER = "org.multiverse.Controller.Manager"
DISK = "org.multiverse.Controller.Disk"
VM = "org.multiverse.Controller.VM"
PROPS = "org.freedesktop.DBus.Properties"
DENIALS = ("org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")


def pct(values, p):
    s = sorted(values)
    return s[max(1, math.ceil(p / 100.0 * len(s))) - 1] if s else 0.0


def client(index, a, disk_path, vm_path, out, lock):
    conn = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
    times = {}
    errors = []
    timeouts = 0
    denied = 0

    def call(kind, path, iface, method, sig="", args=(), write=False):
        nonlocal timeouts, denied
        t = time.perf_counter()
        try:
            reply = conn.call_blocking(OURS, path, iface, method, sig, args, timeout=a.timeout)
        except dbus.exceptions.DBusException as e:
            name = e.get_dbus_name()
            if name == "org.freedesktop.DBus.Error.NoReply":
                timeouts += 1
            elif write and name in DENIALS and a.expect_denied:
                denied += 1
            else:
                errors.append("%s %s: %s" % (kind, name, e.get_dbus_message()))
            reply = None
        times.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
        return reply

    own = "%s-%d" % (a.prefix, index)
    for i in range(a.calls):
        step = i % 10
        if step == 0:
            call("ListDisks", ROOT, MANAGER, "ListDisks", "a{sv}", ({},))
        elif step == 1:
            call("Get", disk_path, PROPS, "Get", "ss", (DISK, "VirtualSize"))
        elif step == 2:
            call("GetAll", disk_path, PROPS, "GetAll", "s", (DISK,))
        elif step == 3:
            call("ListVMs", ROOT, MANAGER, "ListVMs", "a{sv}", ({},))
        elif step == 4:
            call("GetDiskByName", ROOT, MANAGER, "GetDiskByName", "sa{sv}", (a.disk, {}))
        elif step == 5:
            call("GetManagedObjects", ROOT, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        elif step == 6:
            call("VM.State", vm_path, PROPS, "Get", "ss", (VM, "State"))
        elif step == 7:
            call("CreateDisk", ROOT, MANAGER, "CreateDisk", "stsa{sv}", (own, 1 << 20, "qcow2", {}), write=True)
        elif step == 8:
            # Granted clients delete the disk they just created; the others try the shared one.
            target = disk_path if a.expect_denied else call("GetDiskByName", ROOT, MANAGER, "GetDiskByName", "sa{sv}", (own, {}))
            if target is not None:
                call("Delete", target, DISK, "Delete", "a{sv}", ({},), write=True)
        else:
            call("SetAutostart", vm_path, VM, "SetAutostart", "ba{sv}", (bool(i % 20 == 9), {}), write=True)
    conn.close()
    with lock:
        for k, v in times.items():
            out["times"].setdefault(k, []).extend(v)
        out["errors"].extend(errors)
        out["timeouts"] += timeouts
        out["denied"] += denied


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=25)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--prefix", default="load", help="prefix of the clients' own disk names")
    ap.add_argument("--disk", required=True, help="an existing disk every client reads")
    ap.add_argument("--vm", required=True, help="a VM (test driver) whose autostart flag is written")
    ap.add_argument("--expect-denied", action="store_true", help="writes are expected to be denied")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    conn = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
    disk_path = conn.call_blocking(OURS, ROOT, MANAGER, "GetDiskByName", "sa{sv}", (a.disk, {}))
    vm_path = conn.call_blocking(OURS, ROOT, MANAGER, "GetVMByName", "sa{sv}", (a.vm, {}))
    conn.close()
    out = {"times": {}, "errors": [], "timeouts": 0, "denied": 0}
    lock = threading.Lock()
    threads = [threading.Thread(target=client, args=(i, a, disk_path, vm_path, out, lock)) for i in range(a.clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    calls = sum(len(v) for v in out["times"].values())
    print(json.dumps({
        "clients": a.clients, "calls": calls, "seconds": round(elapsed, 2),
        "unexpected_errors": len(out["errors"]), "first_errors": out["errors"][:5],
        "timeouts": out["timeouts"], "expected_denials": out["denied"],
        "latency_ms": {k: {"p50": round(pct(v, 50), 3), "p99": round(pct(v, 99), 3), "n": len(v)}
                       for k, v in sorted(out["times"].items())},
    }))


if __name__ == "__main__":
    main()
