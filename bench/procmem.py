"""What a process costs the host in memory, from /proc (imported by the bench scripts).

RSS counts every resident page the process maps, shared libraries included (libvirt,
GLib and libsystemd pages that every client of them maps too). PSS divides shared pages
among the processes mapping them. USS (Private_Clean + Private_Dirty of
/proc/PID/smaps_rollup) is what the process alone holds: what the host would get back if
it exited. USS is the figure the targets use.
"""


def memory_kb(pid):
    """{"rss", "pss", "uss", "anon", "threads", "hwm"} of pid in kB (threads: a count)."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        fields = {}
        for line in f:
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                fields[key] = int(parts[0])
    out["rss"] = fields.get("Rss", 0)
    out["pss"] = fields.get("Pss", 0)
    out["uss"] = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    out["anon"] = fields.get("Anonymous", 0)
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "Threads":
                out["threads"] = int(value.split()[0])
            elif key == "VmHWM":
                out["hwm"] = int(value.split()[0])
    return out


def describe(m):
    """'RSS 31.0 MB  PSS 20.1 MB  USS 11.9 MB' of a memory_kb() result."""
    return "RSS %5.1f MB  PSS %5.1f MB  USS %5.1f MB" % (m["rss"] / 1024.0, m["pss"] / 1024.0, m["uss"] / 1024.0)
