// Jobs: every running or recently finished job with its operation, target, progress,
// state and error, and Cancel.

import { ROOT, IFACE, h, replace, formatTime, lastSegment, attempt, button, liveRows, cellRow } from "./util.js";
import { explainJob } from "./explain.js";

export function jobsView(root, ctx) {
    const { client, jobs, vms } = ctx;
    const rows = new Map();
    const body = h("tbody", { id: "mv-job-body" });
    const empty = h("p", { class: "mv-muted", id: "mv-job-empty" }, "No jobs.");

    root.append(
        h("h2", {}, "Jobs"),
        h("p", { class: "mv-note" }, "Finished jobs stay listed for a while (the service's [jobs] retention_s)."),
        h("table", { "aria-label": "Jobs" },
          h("thead", {}, h("tr", {}, ["Job", "Operation", "Target", "Started", "Progress", "State",
                                      "Error", ""].map(t => h("th", { scope: "col" }, t)))),
          body),
        empty);

    function target(path) {
        if (path === ROOT)
            return "the host";
        if (vms[path])
            return "VM " + vms[path].Name;
        const parts = String(path).split("/");
        const kind = parts[parts.length - 2];
        // disk and network names are path-encoded: _XX is the byte 0xXX.
        const name = lastSegment(path).replace(/_([0-9a-f]{2})/g, (m, hex) => String.fromCharCode(parseInt(hex, 16)));
        return kind === "vm" ? "VM " + name : kind + " " + name;
    }

    function update(job) {
        let row = rows.get(job.path);
        if (!row) {
            const { tr, cells } = cellRow(job.path, "mv-job-",
                                          ["id", "operation", "target", "started", "progress", "state", "error"]);
            const cancel = button("Cancel", () => {
                attempt("Cancel job " + lastSegment(job.path),
                        client.call(job.path, IFACE.job, "Cancel", [{}], { type: "a{sv}" }), explainJob);
            }, { "data-action": "Cancel", "aria-label": "Cancel job " + lastSegment(job.path) });
            tr.appendChild(h("td", { class: "mv-actions" }, cancel));
            row = { tr, cells, cancel };
            rows.set(job.path, row);
        }
        const { cells, cancel } = row;
        const number = Number(lastSegment(job.path));
        row.number = Number.isNaN(number) ? 0 : number;
        replace(cells.id, lastSegment(job.path));
        replace(cells.operation, job.Operation);
        replace(cells.target, target(job.Target));
        replace(cells.started, formatTime(job.StartTime),
                h("div", { class: "mv-note" }, "by uid " + job.StartedByUID));
        const pct = Math.round((job.Progress || 0) * 100);
        const done = job.State === "succeeded";
        replace(cells.progress,
                h("progress", { max: 1, value: done ? 1 : (job.ProgressValid ? job.Progress : 0),
                                "aria-label": "Progress of job " + lastSegment(job.path) }),
                " " + (done ? "100 %" : job.ProgressValid ? pct + " %" : "\u2014"),
                job.Status ? h("div", { class: "mv-note" }, job.Status) : null);
        replace(cells.state, h("span", { class: "mv-badge", "data-state": job.State }, job.State));
        replace(cells.error, job.Error || "");
        cancel.disabled = job.State !== "running";
    }

    // Newest first.
    liveRows(jobs, body, empty, rows, update, (a, b) => rows.get(b.path).number - rows.get(a.path).number);
    // VM names can arrive after the jobs that target them.
    vms.addEventListener("added", () => { for (const job of Object.values(jobs)) update(job); });
    return {};
}
