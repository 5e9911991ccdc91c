// Filesystem usage. The figures are read from inside a disk's image (what its guest wrote),
// so the service serves them only to callers allowed disk.inspect, through
// GetFilesystemUsage, never in a property (which every bus client receives). The page asks
// once per sample, when a disk's UsageSampled changes, and keeps the answer, or the
// refusal said in place, until the next sample.

import { IFACE, h, attemptListing } from "./util.js";
import { usageBars } from "./fields.js";

export function usageSource(client) {
    const known = new Map(); // disk path → { sampled, rows, loading, refused }
    const listeners = new Set();

    function entry(disk) {
        const sampled = Number(disk.UsageSampled || 0);
        const old = known.get(disk.path);
        if (old && old.sampled === sampled)
            return old;
        const e = { sampled, rows: [], loading: sampled !== 0, refused: null };
        known.set(disk.path, e);
        if (e.loading) {
            const request = client.call(disk.path, IFACE.disk, "GetFilesystemUsage", [{}], { type: "a{sv}" });
            attemptListing("read the filesystem usage of disk " + disk.Name, request, text => { e.refused = text; })
                .then(reply => {
                    e.loading = false;
                    if (reply)
                        e.rows = reply[1];
                    if (known.get(disk.path) === e)
                        for (const listener of listeners) listener(disk.path);
                });
        }
        return e;
    }

    return {
        // The rows of `disk`'s last sample ([] while unknown, refused or never sampled).
        rows: disk => entry(disk).rows,
        // What a page shows for `disk`'s usage: bars, or a muted line saying why there are none.
        view(disk) {
            const e = entry(disk);
            const muted = (text, extra) => h("span", { class: "mv-muted" + (extra || "") }, text);
            if (!e.sampled) return [muted("not sampled")];
            if (e.loading) return [muted("reading the sample\u2026")];
            if (e.refused) return [muted("hidden: reading it needs the disk.inspect action", " mv-refused"),
                                   h("div", { class: "mv-note" }, e.refused)];
            const bars = usageBars(e.rows);
            return bars.length ? bars : [muted("no mounted filesystem")];
        },
        refused: disk => entry(disk).refused,
        // `listener(path)` runs when an answer for a disk arrives.
        onChange: listener => listeners.add(listener),
    };
}
