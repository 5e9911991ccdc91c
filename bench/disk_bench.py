#!/usr/bin/python3
"""Disk benchmark: Clone and Backup of a 2 GiB qcow2 image holding 1 GiB of data against
`cp --sparse=always` and `qemu-img convert` of the same file in the same run; snapshot
creation time on a 1 GiB and an 8 GiB image; a property Get's p99 while a clone runs; ten
ReadFile calls on one disk (one libguestfs appliance launch, then reuse).

Run by bench/run (DBUS_SYSTEM_BUS_ADDRESS set, the daemon up with --image-dir DIR).
The five copies (cp, qemu-img convert, Clone, Backup, and cp followed by `sync --data`, the
durable copy Clone and Backup make: their images are synced before they get their names) run
--rounds times (default 5) in an order rotated each round, each after the page cache is
dropped; the median of each counts.
With --json FILE it also writes the figures there: "copy" (cp, qemu_img_convert, clone,
backup, cp_sync: median seconds, MiB/s of the 1 GiB of data and every round's seconds), "baseline" (the faster of cp and
qemu_img_convert) with "clone_ratio" and "backup_ratio" against it, "snapshot_seconds"
(1g, 8g), "read_file" (total, first and the rest in seconds), "rss_after_kb" (with
--ours-pid: VmRSS, VmHWM, RssAnon, RssFile once the appliance is closed; else null) and
"property_get_during_clone" (n, p50_ms, p99_ms; null without samples).
"""

import argparse
import json
import math
import os
import subprocess
import threading
import time

import dbus

OURS = "org.multiverse.Controller"
ROOT = "/org/multiverse/Controller"
MANAGER = "org.multiverse.Controller.Manager"
DISK = "org.multiverse.Controller.Disk"
JOB = "org.multiverse.Controller.Job"
PROPS = "org.freedesktop.DBus.Properties"


def connect():
    return dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])


def call(conn, path, iface, method, sig="", args=()):
    return conn.call_blocking(OURS, path, iface, method, sig, args, timeout=600)


def wait_job(conn, job):
    while True:
        state = call(conn, job, PROPS, "Get", "ss", (JOB, "State"))
        if state != "running":
            return str(state)
        time.sleep(0.02)


def pct(values, p):
    s = sorted(values)
    return s[max(1, math.ceil(p / 100.0 * len(s))) - 1] if s else float("nan")


def drop(path):
    """Same start for every copy: dirty pages written back and the page cache emptied
    (otherwise the first copy runs on a quiet cache and the later ones pay for its
    writeback)."""
    subprocess.run(["/bin/sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def main():
    a = ARGS
    conn = connect()
    images = a.image_dir
    scratch = a.scratch
    os.makedirs(scratch, exist_ok=True)
    src = call(conn, ROOT, MANAGER, "CreateDisk", "stsa{sv}", ("bench-src", 2 << 30, "qcow2", {}))
    src_file = os.path.join(images, "bench-src")
    # 1 GiB of non-zero data in 64 MiB pieces spread over the 2 GiB disk.
    for i in range(16):
        subprocess.run(["/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P %d %dM 64M" % (i + 1, i * 128), src_file],
                       check=True, stdout=subprocess.DEVNULL)
    data = 1 << 30
    # The source is read once first: every copy then starts from the same place (this
    # machine's page cache dropped, the host's cache warm), whatever its turn.
    with open(src_file, "rb") as f:
        while f.read(8 << 20):
            pass

    def run_cp(r):
        subprocess.run(["/bin/cp", "--sparse=always", src_file, os.path.join(scratch, "cp-%d.img" % r)], check=True)

    def run_cp_sync(r):
        """cp, then its data synced to disk: the durable copy a Backup makes."""
        path = os.path.join(scratch, "cp-sync-%d.img" % r)
        subprocess.run(["/bin/cp", "--sparse=always", src_file, path], check=True)
        subprocess.run(["/bin/sync", "--data", path], check=True)

    def run_convert(r):
        subprocess.run(["/usr/bin/qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", src_file,
                        os.path.join(scratch, "convert-%d.img" % r)], check=True)

    def clone(name):
        job = call(conn, src, DISK, "Clone", "sa{sv}", (name, {}))
        assert wait_job(conn, job) == "succeeded"

    def run_clone(r):
        clone("bench-clone-%d" % r)

    def tidy(r):
        """Removes the round's copies, so every round writes into the same free space."""
        for name in os.listdir(scratch):
            os.unlink(os.path.join(scratch, name))
        call(conn, ROOT + "/disk/" + "bench_2dclone_2d%d" % r, DISK, "Delete", "a{sv}", ({},))

    def backup(r):
        # A full point each round (the source does not change between rounds: auto would
        # make empty incremental points).
        job = call(conn, src, DISK, "Backup", "a{sv}", ({"mode": "full"},))
        assert wait_job(conn, job) == "succeeded"

    # (JSON key, label, function). Each round runs all four, each after the page cache is
    # dropped, in an order rotated by one per round, so no method always goes first (the
    # first copy after a pause is the one that pays for the disk's cold start); the figure
    # of each is the median of its rounds.
    methods = [("cp", "cp --sparse=always", run_cp), ("qemu_img_convert", "qemu-img convert", run_convert),
               ("clone", "Clone (ours, synced)", run_clone), ("backup", "Backup, full point (ours, indexed, synced)", backup),
               ("cp_sync", "cp --sparse=always + sync --data", run_cp_sync)]
    times = {k: [] for k, _, _ in methods}
    for r in range(a.rounds):
        for i in range(len(methods)):
            key, _, fn = methods[(i + r) % len(methods)]
            drop(None)
            t = time.monotonic()
            fn(r)
            times[key].append(time.monotonic() - t)
        tidy(r)
    keys = [k for k, _, _ in methods]
    rows = []
    for key, label, _ in methods:
        d = sorted(times[key])[len(times[key]) // 2]
        rows.append((label, d, data / d / (1 << 20)))

    # A chain: four incremental points, each after 1 % of the disk changed in 64 KiB-aligned
    # extents (328 of them at offsets spread over the disk), then a restore of the fifth
    # point (the last incremental one) against the durable copy of the same data.
    extent = 64 << 10
    changed = (2 << 30) // 100 // extent * extent
    incrementals = []
    drop(None)
    full = call(conn, src, DISK, "Backup", "a{sv}", ({"mode": "full"},))
    assert wait_job(conn, full) == "succeeded"
    for n in range(4):
        step = (2 << 30) // (changed // extent)
        cmds = []
        for i in range(changed // extent):
            cmds += ["-c", "write -P %d %d 64k" % (0x40 + n, (i * step + n * extent * 3) // extent * extent)]
        subprocess.run(["/usr/bin/qemu-io", "-f", "qcow2"] + cmds + [src_file], check=True, stdout=subprocess.DEVNULL)
        drop(None)
        t = time.monotonic()
        job = call(conn, src, DISK, "Backup", "a{sv}", ({"mode": "incremental"},))
        assert wait_job(conn, job) == "succeeded"
        took = time.monotonic() - t
        result = call(conn, job, PROPS, "Get", "ss", (JOB, "Result"))
        incrementals.append((took, int(result["size"]), str(result["backup_id"])))
    drop(None)
    t = time.monotonic()
    job = call(conn, src, DISK, "Restore", "sa{sv}", (incrementals[-1][2], {}))
    assert wait_job(conn, job) == "succeeded"
    restore_fifth = time.monotonic() - t

    # A property Get every 2 ms while a clone runs (a separate clone: on two cores that
    # client competes with the copy for CPU, so it is not part of the throughput rounds).
    samples = []
    stop = threading.Event()

    def getter():
        c = connect()
        while not stop.is_set():
            t = time.perf_counter_ns()
            call(c, src, PROPS, "Get", "ss", (DISK, "VirtualSize"))
            samples.append(time.perf_counter_ns() - t)
            time.sleep(0.002)
    g = threading.Thread(target=getter)
    g.start()
    drop(None)
    clone("bench-clone-latency")
    stop.set()
    g.join()

    snap = []
    for size, name in ((1 << 30, "bench-1g"), (8 << 30, "bench-8g")):
        p = call(conn, ROOT, MANAGER, "CreateDisk", "stsa{sv}", (name, size, "qcow2", {}))
        f = os.path.join(images, name)
        subprocess.run(["/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P 7 0 256M", f], check=True, stdout=subprocess.DEVNULL)
        t = time.monotonic()
        call(conn, p, DISK, "CreateSnapshot", "sa{sv}", ("bench", {}))
        snap.append((name, time.monotonic() - t))

    # Ten ReadFile calls on one disk: one appliance launch, then reuse.
    files = call(conn, ROOT, MANAGER, "CreateDisk", "stsa{sv}", ("bench-files", 256 << 20, "qcow2", {}))
    job = call(conn, files, DISK, "Format", "sa{sv}", ("ext4", {}))
    assert wait_job(conn, job) == "succeeded"
    call(conn, files, DISK, "WriteFile", "saya{sv}", ("/bench.txt", dbus.ByteArray(b"x" * 4096), {}))
    time.sleep(a.guestfs_idle + 1)  # the write's appliance is gone: the first read launches one
    reads = []
    for _ in range(10):
        t = time.monotonic()
        call(conn, files, DISK, "ReadFile", "sa{sv}", ("/bench.txt", {}))
        reads.append(time.monotonic() - t)

    # The same first read the way the daemon made it before the appliance helper (0.2.0):
    # libguestfs in a root process, its qemu root and opening the image itself. Same image,
    # same backend settings, same steps as the daemon's first read (launch, inspect_os,
    # list_filesystems, mount, read), in this run: the cost of the unprivileged helper and
    # of the NBD export (and the D-Bus call) is the difference.
    tcg = os.environ.get("BENCH_GUESTFS_SETTINGS", '"force_tcg"').replace('"', "").replace(",", ":").replace(" ", "")
    env = dict(os.environ, LIBGUESTFS_BACKEND="direct", LIBGUESTFS_BACKEND_SETTINGS=tcg)
    root_reads = []
    for _ in range(2):  # the first may build root's own appliance cache: the second counts
        t = time.monotonic()
        subprocess.run(["/usr/bin/guestfish", "--ro", "--format=qcow2", "-a", os.path.join(images, "bench-files"), "--",
                        "run", ":", "inspect-os", ":", "list-filesystems", ":", "mount-ro", "/dev/sda1", "/",
                        ":", "cat", "/bench.txt"], env=env, check=True, stdout=subprocess.DEVNULL)
        root_reads.append(time.monotonic() - t)
    root_read = root_reads[-1]

    # The daemon's size once the disk work is over and the read appliance has been closed
    # (idle_s after the last read) and the memory it freed trimmed (2 s after that): what
    # a burst of copies and guest reads leaves behind.
    rss_after = None
    if a.ours_pid:
        time.sleep(a.guestfs_idle + 5)
        with open("/proc/%d/status" % a.ours_pid) as f:
            rss_after = {k: int(v.split()[0]) for k, _, v in (l.partition(":") for l in f)
                         if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}

    print()
    print("Disks: 2 GiB qcow2 image with 1 GiB of data; median of %d rounds (seconds of every round in brackets)" % a.rounds)
    print("  %-38s %9s %12s" % ("copy", "seconds", "MiB/s"))
    for (label, d, rate), key in zip(rows, keys):
        print("  %-38s %9.2f %12.1f   [%s]" % (label, d, rate, " ".join("%.2f" % x for x in times[key])))
    base = max(rows[0][2], rows[1][2])
    print("  Clone throughput %.2fx, Backup %.2fx the faster of cp/qemu-img convert (target >= 0.9x); "
          "against cp + sync (all durable): Clone %.2fx, Backup %.2fx"
          % (rows[2][2] / base, rows[3][2] / base, rows[2][2] / rows[4][2], rows[3][2] / rows[4][2]))
    inc_time = sorted(t for t, _, _ in incrementals)[len(incrementals) // 2]
    inc_bytes = sorted(b for _, b, _ in incrementals)[len(incrementals) // 2]
    print("  incremental point after 1 %% changed (%d KiB in 64 KiB extents), median of %d: %.2f s (%.1f %% of the full "
          "point's %.2f s; target <= 10 %%), %d KiB written (%.2fx the changed bytes; target <= 2x)"
          % (changed >> 10, len(incrementals), inc_time, 100 * inc_time / rows[3][1], rows[3][1], inc_bytes >> 10,
             inc_bytes / changed))
    print("  restore of the fifth point (a full and four incremental ones): %.2f s, %.2fx the speed of cp + sync of the "
          "same data (%.2f s; target >= 0.9x)" % (restore_fifth, rows[4][1] / restore_fifth, rows[4][1]))
    print("  snapshot creation: %s" % ", ".join("%s %.3f s" % s for s in snap))
    print("  ten ReadFile calls on one disk: %.2f s in all; the first (appliance launch) %.2f s, the other nine %.1f ms together"
          % (sum(reads), reads[0], sum(reads[1:]) * 1000))
    print("  first read, appliance as multiverse-guestfs over NBD (ReadFile) %.2f s against root libguestfs opening the image "
          "(guestfish, as before 0.3.0) %.2f s: %.2fx" % (reads[0], root_read, reads[0] / root_read))
    if rss_after:
        print("  daemon RSS after the disk work (appliance closed): %.1f MB (anon %d kB, file %d kB; peak %.1f MB)"
              % (rss_after["VmRSS"] / 1024, rss_after["RssAnon"], rss_after["RssFile"], rss_after["VmHWM"] / 1024))
    if samples:
        print("  Disk property Get while the clone ran: p50 %.3f ms, p99 %.3f ms (%d calls; target p99 < 5 ms)"
              % (pct(samples, 50) / 1e6, pct(samples, 99) / 1e6, len(samples)))

    if a.json:
        doc = {
            "image": {"format": "qcow2", "virtual_bytes": 2 << 30, "data_bytes": data},
            "rounds": a.rounds,
            "copy": {k: {"label": label, "seconds": d, "mib_s": rate, "round_seconds": times[k]}
                     for k, (label, d, rate) in zip(keys, rows)},
            "baseline": "cp" if rows[0][2] >= rows[1][2] else "qemu_img_convert",
            "clone_ratio": rows[2][2] / base,
            "backup_ratio": rows[3][2] / base,
            "chain": {"changed_bytes": changed, "incremental_seconds": [t for t, _, _ in incrementals],
                      "incremental_bytes": [b for _, b, _ in incrementals], "incremental_median_seconds": inc_time,
                      "incremental_time_ratio": inc_time / rows[3][1], "incremental_bytes_ratio": inc_bytes / changed,
                      "restore_fifth_seconds": restore_fifth, "restore_fifth_ratio": rows[4][1] / restore_fifth},
            "snapshot_seconds": {name[len("bench-"):]: d for name, d in snap},
            "read_file": {"calls": len(reads), "total_seconds": sum(reads), "first_seconds": reads[0],
                          "rest_seconds": sum(reads[1:]), "root_guestfish_first_seconds": root_read},
            "rss_after_kb": rss_after,
            "property_get_during_clone": ({"n": len(samples), "p50_ms": pct(samples, 50) / 1e6,
                                           "p99_ms": pct(samples, 99) / 1e6} if samples else None),
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image-dir", required=True)
    ap.add_argument("--scratch", required=True)
    ap.add_argument("--guestfs-idle", type=int, default=5, help="the daemon's [guestfs] idle_s")
    ap.add_argument("--ours-pid", type=int, default=0, help="the daemon's pid, for its RSS after the disk work")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the four copies; the median counts (default 5)")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    ARGS = ap.parse_args()
    main()
