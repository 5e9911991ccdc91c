#!/usr/bin/python3
"""Backup of a running VM's disk: a full point (Disk.Backup, mode full) of a 2 GiB qcow2
disk holding 1 GiB of data while a tiny guest runs on it (libvirt's push backup, TCG),
against `cp --sparse=always` + `sync --data` of the same image file into the same
filesystem (the backup directory's), in the same run: --rounds rounds (default 3), the
order rotated, each after the page cache is dropped; the median of each counts.
Both are durable copies; the point is also indexed (SHA-256 of each 64 KiB block, one read
of the point) and, unlike cp, a consistent image of a disk in use. The like-for-like
baseline is therefore also measured: cp + sync followed by sha256sum of the copy (one read
of the copy, as the index reads the point).

Run by bench/run after the readiness section (DBUS_SYSTEM_BUS_ADDRESS set, the daemon up
on qemu:///system with --image-dir and --backup-dir). With --json FILE it writes
"live_full", "cp_sync" and "cp_sync_sha256" (median seconds, MiB/s of the data, every
round's seconds), "ratio" (cp_sync's time over the point's: 1 means as fast) and
"fair_ratio" (cp_sync_sha256's over the point's).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import dbus

# bench/run runs the scripts isolated (-I): the helpers of the other sections are found here.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from disk_bench import call, connect, drop, wait_job, DISK, MANAGER, ROOT
from readiness_bench import Client, virsh

NAME = "mvbench-live"
IMAGE = "mvbench-live.qcow2"


def xml(guest_dir, image):
    return f"""<domain type='qemu'>
  <name>{NAME}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{guest_dir}/vmlinuz</kernel><initrd>{guest_dir}/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet</cmdline></os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{image}'/><target dev='vda' bus='virtio'/></disk>
    <serial type='pty'/><console type='pty'/><memballoon model='none'/>
  </devices>
</domain>"""


def cleanup():
    virsh("destroy", NAME)
    virsh("undefine", NAME, "--checkpoints-metadata")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--guest-dir", required=True, help="scripts/make-tiny-guest's output")
    ap.add_argument("--image-dir", required=True)
    ap.add_argument("--backup-dir", required=True, help="the daemon's; cp writes beside it")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    conn = connect()
    client = Client()
    cleanup()
    disk = call(conn, ROOT, MANAGER, "CreateDisk", "stsa{sv}", (IMAGE, 2 << 30, "qcow2", {}))
    image = os.path.join(a.image_dir, IMAGE)
    for i in range(16):
        subprocess.run(["/usr/bin/qemu-io", "-f", "qcow2", "-c", "write -P %d %dM 64M" % (i + 1, i * 128), image],
                       check=True, stdout=subprocess.DEVNULL)
    data = 1 << 30
    scratch = os.path.join(os.path.dirname(a.backup_dir.rstrip("/")), "live-scratch")
    os.makedirs(scratch, exist_ok=True)
    try:
        vm = client.define(({}, xml(a.guest_dir, image)))
        client.start(vm)

        def live(r):
            job = call(conn, disk, DISK, "Backup", "a{sv}", ({"mode": "full"},))
            state = wait_job(conn, job)
            if state != "succeeded":
                raise SystemExit(f"live backup bench: the point failed: {call(conn, job, 'org.freedesktop.DBus.Properties', 'Get', 'ss', ('org.multiverse.Controller.Job', 'Error'))}")

        def cp_sync(r):
            path = os.path.join(scratch, "cp-%d.img" % r)
            subprocess.run(["/bin/cp", "--sparse=always", image, path], check=True)
            subprocess.run(["/bin/sync", "--data", path], check=True)

        def cp_sync_sha256(r):
            cp_sync(r)
            subprocess.run(["/usr/bin/sha256sum", os.path.join(scratch, "cp-%d.img" % r)], check=True,
                           stdout=subprocess.DEVNULL)

        methods = [("live_full", live), ("cp_sync", cp_sync), ("cp_sync_sha256", cp_sync_sha256)]
        times = {k: [] for k, _ in methods}
        for r in range(a.rounds):
            for key, run in methods[r % len(methods):] + methods[:r % len(methods)]:
                drop(image)
                t0 = time.monotonic()
                run(r)
                times[key].append(time.monotonic() - t0)
    finally:
        cleanup()
        for name in os.listdir(scratch):
            os.unlink(os.path.join(scratch, name))
    figures = {k: {"median_s": statistics.median(v), "mib_s": data / (1 << 20) / statistics.median(v), "rounds_s": v}
               for k, v in times.items()}
    ratio = figures["cp_sync"]["median_s"] / figures["live_full"]["median_s"]
    fair = figures["cp_sync_sha256"]["median_s"] / figures["live_full"]["median_s"]
    print(f"live backup: a full point of a running VM's disk (1 GiB of data) {figures['live_full']['median_s']:.2f} s "
          f"({figures['live_full']['mib_s']:.0f} MiB/s); cp + sync of the same file {figures['cp_sync']['median_s']:.2f} s: "
          f"{ratio:.2f}x of it (target >= 0.95x); cp + sync + sha256sum (like for like: the point is indexed) "
          f"{figures['cp_sync_sha256']['median_s']:.2f} s: {fair:.2f}x of it", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(figures, ratio=ratio, fair_ratio=fair), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
