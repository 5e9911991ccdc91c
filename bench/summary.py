#!/usr/bin/python3 -I
"""One table of all benchmark figures: ours next to libvirt-dbus's or the copy baseline's.

Run by bench/run after the sections, on the JSON files they wrote. Standalone:

  summary.py [--dbus FILE] [--settings FILE] [--vms FILE] [--disks FILE] [--readiness FILE] [FILE ...]

The files are those of dbus_bench.py, settings_bench.py, vm_bench.py and disk_bench.py
(each with --json FILE); a FILE given without an option is recognized by its contents.
A section without a readable file is skipped with a note. Columns: the figure; ours
(multiverse-controllerd); the other side, libvirt-dbus on the same bus, or for copies the
faster of `cp --sparse=always` and `qemu-img convert` of the same image; ratio = ours /
the other side; the target where one is known (those the section scripts print, and
CreateSnapshot on an 8 GiB image within 2x of a 1 GiB one), with "ok" or "MISSED".
Exit status 0 when at least one section was read, else 1. Standard library only.
"""

import argparse
import json
import math
import os
import sys

SECTIONS = ("dbus", "settings", "vms", "disks", "readiness")
TITLES = {"dbus": "D-Bus calls and RSS (dbus_bench.py)", "settings": "settings agent (settings_bench.py)",
          "vms": "VMs (vm_bench.py)", "disks": "disks (disk_bench.py)",
          "readiness": "guest readiness, tiny guests on qemu:///system (readiness_bench.py)"}


def number(v):
    """v as a float, or None when missing or not a finite number."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def unit(fmt):
    """A cell formatter: '-' for a missing figure, else fmt % value."""
    return lambda v: "-" if number(v) is None else fmt % v


US = unit("%.1f µs")
MS = unit("%.1f ms")
MS3 = unit("%.3f ms")
SEC = unit("%.2f s")
SEC3 = unit("%.3f s")
MB = unit("%.1f MB")
KB = unit("%.1f KB")
MIBS = unit("%.1f MiB/s")

NONE = object()  # Table.add: no other side for this figure


def at_most(limit):
    return ("<= %gx" % limit, lambda ours, other, ratio: None if ratio is None else ratio <= limit)


def at_least(limit):
    return (">= %gx" % limit, lambda ours, other, ratio: None if ratio is None else ratio >= limit)


def no_more_than(limit, text):
    """An absolute target on our figure (`text` says it, e.g. '<= 12 MB')."""
    return (text, lambda ours, other, ratio: None if ours is None else ours <= limit)


def below_ms(limit):
    return ("< %g ms" % limit, lambda ours, other, ratio: None if ours is None else ours < limit)


class Table:
    """Rows of one section: (figure, ours, other, ratio, target, verdict), verdict True/False/None."""

    def __init__(self):
        self.rows = []
        self.notes = []

    def add(self, figure, ours, other=NONE, fmt=MS3, other_label="", target=None):
        """A row; the other side's cell and the ratio only when other is given (None shows as '-')."""
        o, t = number(ours), number(None if other is NONE else other)
        r = o / t if o is not None and t else None
        other_cell = ratio_cell = ""
        if other is not NONE:
            other_cell = fmt(other) + (" (%s)" % other_label if other_label else "")
            ratio_cell = "-" if r is None else "%.2fx" % r
        verdict = target[1](o, t, r) if target else None
        self.rows.append((figure, fmt(ours), other_cell, ratio_cell, target[0] if target else "", verdict))

    def note(self, text):
        self.notes.append(text)


# --- sections ----------------------------------------------------------------------------

def dbus_rows(doc, t):
    """dbus_bench.py: results[] (call, peer, n, p50_us, p99_us, mean_us, errors, ...), memory_kb, create_disk."""
    results = doc["results"]

    def find(prefix, peer):
        for r in results:
            if r["call"].startswith(prefix) and r["peer"] == peer:
                return r
        return None

    for label, prefix in (("Peer.Ping", "Peer.Ping"), ("Properties.Get", "Properties.Get")):
        o, l = find(prefix, "ours") or {}, find(prefix, "libvirt-dbus") or {}
        for k in ("p50", "p99", "mean"):
            # Issue 2's target: our property Get p50 no slower than libvirt-dbus's.
            target = at_most(1) if (label, k) == ("Properties.Get", "p50") else None
            t.add("%s %s" % (label, k), o.get(k + "_us"), l.get(k + "_us"), fmt=US, target=target)
    o = find("ListDisks", "ours")
    if o:
        for k in ("p50", "p99"):
            t.add("%s %s" % (o["call"], k), o.get(k + "_us"), fmt=US)
    # What the daemon costs the host is its private memory (USS), not its RSS, which counts
    # the shared libraries' pages every process maps. Target: idle USS <= 12 MB.
    mem = doc.get("memory_kb") or {}
    ours, theirs = mem.get("ours_idle") or {}, mem.get("libvirt_dbus_idle") or {}
    mb = lambda m, k: None if number(m.get(k)) is None else m[k] / 1024.0  # noqa: E731
    t.add("USS idle, after the calls", mb(ours, "uss"), mb(theirs, "uss"), fmt=MB, target=no_more_than(12, "<= 12 MB"))
    t.add("PSS idle, after the calls", mb(ours, "pss"), mb(theirs, "pss"), fmt=MB)
    t.add("RSS idle, after the calls", mb(ours, "rss"), mb(theirs, "rss"), fmt=MB)
    t.add("USS after start-up", mb(mem.get("ours_startup") or {}, "uss"), fmt=MB)
    create = doc.get("create_disk")
    if create:
        t.add("CreateDisk p50 (%d x, set-up)" % create["n"], create.get("p50_us"), fmt=US)
    for r in results:
        if r.get("errors"):
            t.note("%s/%s: %d failed calls, first: %s" % (r["call"], r["peer"], r["errors"], r.get("first_error")))
        elif not r.get("n"):
            t.note("%s/%s: no measured calls" % (r["call"], r["peer"]))
        if r.get("slow_calls"):
            t.note("%s/%s: %d calls slower than 10 ms (max %.1f ms)"
                   % (r["call"], r["peer"], r["slow_calls"], r.get("max_us", 0) / 1000))
    if doc.get("build") != "release":
        t.note("the daemon was a %s build: its figures are a smoke test only" % doc.get("build", "unknown"))
    return "%d calls per row, %s build %s" % (doc.get("iterations", 0), doc.get("build", "?"), doc.get("version", "?"))


def settings_rows(doc, t):
    """settings_bench.py: latency[] (change, failures, restored_ms/reverted_ms p50 p99 max), idle CPU."""
    for r in doc["latency"]:
        for key, what in (("restored_ms", "restored"), ("reverted_ms", "Reverted")):
            for k in ("p50", "p99"):
                t.add("%s: %s %s" % (r["change"], what, k), r[key].get(k), fmt=MS)
        if r.get("failures"):
            t.note("%s: %d of %d drifts not reverted in time" % (r["change"], r["failures"], doc.get("drifts", 0)))
    window = number(doc.get("idle_seconds"))

    def cpu(v):
        if number(v) is None:
            return "-"
        return "%.2f s (%.3f %%)" % (v, 100 * v / window) if window else "%.2f s" % v
    t.add("idle CPU over %s s" % ("%.0f" % window if window else "?"), doc.get("idle_cpu_seconds"),
          doc.get("peer_idle_cpu_seconds"), fmt=cpu)
    return "%s drifts per change" % doc.get("drifts", "?")


def vms_rows(doc, t):
    """vm_bench.py: define_ours/define_theirs, calls{name: n p50_ms p99_ms}, concurrent_*, StartAll, RSS."""
    calls = doc["calls"]
    pairs = (("DefineVMFromXML / DomainDefineXML", doc["define_ours"], doc["define_theirs"], {}),
             ("ListVMs / ListDomains", calls["ListVMs (ours)"], calls["ListDomains (libvirt-dbus)"],
              {"p50": at_most(0.5)}),
             ("property Get (VM / Domain Name)", calls["VM Get Name (ours)"],
              calls["Domain Get Name (libvirt-dbus)"], {"p50": at_most(1)}))
    for label, o, l, targets in pairs:
        for k in ("p50", "p99"):
            t.add("%s %s" % (label, k), o.get(k + "_ms"), l.get(k + "_ms"), target=targets.get(k))
        if label.startswith("DefineVMFromXML") and doc.get("polkit_check"):
            # Part of every privileged call of ours; libvirt-dbus on the test driver asks none.
            for k in ("p50", "p99"):
                t.add("  polkit CheckAuthorization alone %s" % k, doc["polkit_check"].get(k + "_ms"))
    g = calls.get("GetManagedObjects (ours)")
    if g:
        for k in ("p50", "p99"):
            t.add("GetManagedObjects %s" % k, g.get(k + "_ms"))
    for key, when in (("concurrent_idle", "idle"), ("concurrent_busy", "during StartAll")):
        s = doc.get(key) or {}
        for k in ("p50", "p99"):
            t.add("concurrent VM Get, %s, %s" % (when, k), s.get(k + "_ms"))
    t.add("StartAll of %s VMs (%s)" % (doc.get("vms", "?"), doc.get("startall_state", "?")),
          doc.get("startall_seconds"), fmt=SEC)
    if doc.get("startall_state") not in (None, "succeeded"):
        t.note("StartAll ended %s" % doc["startall_state"])
    mem = doc.get("memory_kb") or {}
    ours, theirs = mem.get("ours") or {}, mem.get("theirs") or {}
    mb = lambda m, k: None if number(m.get(k)) is None else m[k] / 1024.0  # noqa: E731
    for k in ("uss", "pss", "rss"):
        t.add("%s with %s VMs defined" % (k.upper(), doc.get("vms", "?")), mb(ours, k), mb(theirs, k), fmt=MB)
    per_vm = doc.get("uss_kb_per_vm") or {}
    t.add("USS per VM (growth / VMs)", per_vm.get("ours"), per_vm.get("theirs"), fmt=KB, target=no_more_than(8, "<= 8 KB"))
    if doc.get("ours_listed") != doc.get("theirs_listed"):
        t.note("ours lists %s VMs, libvirt-dbus %s" % (doc.get("ours_listed"), doc.get("theirs_listed")))
    return "%s VMs on each side" % doc.get("vms", "?")


def disks_rows(doc, t):
    """disk_bench.py: copy{cp, qemu_img_convert, clone, backup, cp_sync}, baseline, snapshots, ReadFile, Get."""
    copy = doc["copy"]
    base_key = doc.get("baseline")
    if base_key not in ("cp", "qemu_img_convert"):
        base_key = max(("cp", "qemu_img_convert"), key=lambda k: number(copy[k]["mib_s"]) or 0)
    base = copy[base_key]
    name = {"cp": "cp", "qemu_img_convert": "qemu-img convert"}[base_key]
    # Like with like: Clone and Backup end with their data on disk (synced), so the target
    # compares them with the same durable copy, cp followed by sync --data (>= 0.95x). The
    # page-cache copies (cp, qemu-img convert, not synced) are shown for reference only.
    for key, label in (("clone", "Clone against cp + sync (both durable)"),
                       ("backup", "Backup (full point, indexed) against cp + sync (both durable)")):
        if key in copy and "cp_sync" in copy:
            t.add(label, copy[key]["mib_s"], copy["cp_sync"]["mib_s"], fmt=MIBS, other_label="cp + sync --data",
                  target=at_least(0.95))
    for key, label in (("clone", "Clone against an unsynced copy (reference)"),
                       ("backup", "Backup against an unsynced copy (reference)")):
        c = copy.get(key)
        if c is not None:
            t.add(label, c["mib_s"], base["mib_s"], fmt=MIBS, other_label=name)
    for key in ("cp", "qemu_img_convert"):
        if key != base_key:
            other = copy[key]
            t.note("slower baseline: %s %s, %s" % (other.get("label", key), MIBS(other.get("mib_s")),
                                                    SEC(other.get("seconds"))))
    chain = doc.get("chain")
    if chain:
        t.note("incremental point after 1 %% changed: %.1f %% of a full point's time (target <= 10 %%), %.2fx the changed "
               "bytes written (target <= 2x); restore of the fifth point %.2fx cp + sync (target >= 0.9x)"
               % (100 * chain["incremental_time_ratio"], chain["incremental_bytes_ratio"], chain["restore_fifth_ratio"]))
    snap = doc.get("snapshot_seconds") or {}
    t.add("CreateSnapshot, 1 GiB image", snap.get("1g"), fmt=SEC3)
    t.add("CreateSnapshot, 8 GiB image", snap.get("8g"), snap.get("1g"), fmt=SEC3, other_label="1 GiB image",
          target=at_most(2))
    rf = doc.get("read_file")
    if rf:
        n = rf.get("calls", 10)
        t.add("ReadFile x%d, all" % n, rf.get("total_seconds"), fmt=SEC)
        t.add("ReadFile, first (appliance launch)", rf.get("first_seconds"), fmt=SEC)
        rest = number(rf.get("rest_seconds"))
        t.add("ReadFile, the other %d together" % (n - 1), None if rest is None else rest * 1000, fmt=MS)
    r = doc.get("rss_after_kb")
    if r:
        t.add("RSS after the disk work", r.get("VmRSS", 0) / 1024, fmt=MB)
    g = doc.get("property_get_during_clone")
    if g:
        t.add("Disk property Get during Clone, p50", g.get("p50_ms"))
        t.add("Disk property Get during Clone, p99", g.get("p99_ms"), target=below_ms(5))
    else:
        t.note("no property Get samples during the clone")
    img = doc.get("image") or {}
    rounds = doc.get("rounds")
    return "a %s %s image with %s of data; %sbaseline: the faster of cp and qemu-img convert" % (
        size(img.get("virtual_bytes")), img.get("format", "qcow2"), size(img.get("data_bytes")),
        "copies: median of %d rotated rounds; " % rounds if rounds else "")


def size(b):
    return "?" if number(b) is None else "%g GiB" % (b / float(1 << 30))


def readiness_rows(doc, t):
    """readiness_bench.py: readiness{ready_ms raw_ms rtt_ms: p50 p99}, start_all_pair, idle."""
    r = doc["readiness"]
    t.add("READY=1 to Ready() p50", r["ready_ms"].get("p50"), fmt=MS)
    t.add("READY=1 to Ready() p99", r["ready_ms"].get("p99"), fmt=MS, target=below_ms(50))
    t.add("  the same with the trip to the guest, p99", r["raw_ms"].get("p99"), fmt=MS)
    t.add("  ping port round trip p50 (subtracted / 2)", r["rtt_ms"].get("p50"), fmt=MS)
    if r.get("missed"):
        t.note("%d of %d READY=1 samples got no Ready() within 5 s" % (r["missed"], r.get("samples", 0)))
    p = doc["start_all_pair"]
    slack = None if number(p.get("sum_s")) is None else p["sum_s"] + 1
    t.add("StartAll router + controller", p.get("start_all_s"), p.get("sum_s"), fmt=SEC, other_label="boots alone",
          target=("<= sum + 1 s", lambda ours, other, ratio: None if ours is None or slack is None else ours <= slack))
    i = doc["idle"]
    window = number(i.get("seconds"))
    t.add("daemon CPU, %s channels idle %s s" % (i.get("guests"), "%.0f" % window if window else "?"), i.get("cpu_s"),
          fmt=lambda v: "-" if number(v) is None else "%.2f s (%.3f %%)" % (v, 100 * v / window) if window else "%.2f s" % v)
    return "%s samples, %s guests" % (r.get("samples", "?"), i.get("guests", "?"))


BUILDERS = {"dbus": dbus_rows, "settings": settings_rows, "vms": vms_rows, "disks": disks_rows,
            "readiness": readiness_rows}


def detect(doc):
    """The section a JSON document comes from, by its keys."""
    if not isinstance(doc, dict):
        return None
    if "results" in doc:
        return "dbus"
    if "latency" in doc:
        return "settings"
    if "define_ours" in doc:
        return "vms"
    if "copy" in doc:
        return "disks"
    if "start_all_pair" in doc:
        return "readiness"
    return None


def load(path):
    """(document, None) or (None, why not)."""
    if not os.path.exists(path):
        return None, "%s does not exist (section skipped or failed)" % path
    try:
        with open(path) as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return None, "%s unreadable: %s" % (path, e)


# --- output ------------------------------------------------------------------------------

def render(groups, skipped):
    """groups: [(section, subtitle, Table)]; returns the lines of the table and its notes."""
    header = ("figure", "ours", "libvirt-dbus / baseline", "ratio", "target")
    met = missed = 0
    body = []  # a section's title as a str, a row as its five cells
    for section, subtitle, t in groups:
        body.append("%s: %s" % (TITLES[section], subtitle))
        for figure, ours, other, ratio, target, verdict in t.rows:
            if target and verdict is not None:
                target += "  ok" if verdict else "  MISSED"
                met += verdict
                missed += not verdict
            body.append(("  " + figure, ours, other, ratio, target))
    rows = [r for r in body if not isinstance(r, str)]
    w = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(5)]

    def line(c):
        return ("%-*s  %*s  %*s  %*s  %-*s" % (w[0], c[0], w[1], c[1], w[2], c[2], w[3], c[3], w[4], c[4])).rstrip()

    out = ["", "Summary: multiverse-controllerd (ours) against libvirt-dbus or the copy baselines; "
               "ratio = ours / the other side", "", line(header), line(tuple("-" * n for n in w))]
    out.extend(r if isinstance(r, str) else line(r) for r in body)
    notes = []
    for section, _, t in groups:
        notes.extend("%s: %s" % (section, n) for n in t.notes)
    notes.extend("%s: not in this summary: %s" % (s, why) for s, why in skipped)
    if met or missed:
        out.append("")
        out.append("targets: %d met, %d missed" % (met, missed))
    if notes:
        out.append("")
        out.extend("note: " + n for n in notes)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for s in SECTIONS:
        ap.add_argument("--" + s, metavar="FILE", help="JSON of the %s section" % s)
    ap.add_argument("files", nargs="*", metavar="FILE", help="JSON files of any section, recognized by contents")
    a = ap.parse_args()

    docs, skipped = {}, []
    for s in SECTIONS:
        path = getattr(a, s)
        if path is None:
            continue
        doc, why = load(path)
        if doc is None:
            skipped.append((s, why))
        else:
            docs[s] = (path, doc)
    for path in a.files:
        doc, why = load(path)
        if doc is None:
            skipped.append(("?", why))
            continue
        s = detect(doc)
        if s is None:
            skipped.append(("?", "%s: not the JSON of a known section" % path))
        elif s in docs:
            skipped.append((s, "%s: a second file for this section (%s already read)" % (path, docs[s][0])))
        else:
            docs[s] = (path, doc)

    groups = []
    for s in SECTIONS:
        if s not in docs:
            if not any(k == s for k, _ in skipped):
                skipped.append((s, "no file given"))
            continue
        path, doc = docs[s]
        t = Table()
        try:
            subtitle = BUILDERS[s](doc, t)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            skipped.append((s, "%s: unexpected structure (%s: %s)" % (path, type(e).__name__, e)))
            continue
        groups.append((s, subtitle, t))
    order = {s: i for i, s in enumerate(SECTIONS + ("?",))}
    skipped.sort(key=lambda x: order[x[0]])

    if groups:
        print("\n".join(render(groups, skipped)), flush=True)
        return 0
    print("\nSummary: no figures to show", flush=True)
    for s, why in skipped:
        print("note: %s: not in this summary: %s" % (s, why))
    return 1


if __name__ == "__main__":
    sys.exit(main())
