// Start all and Stop all: the Manager's two jobs over every VM, in the service's order
// (network controllers, interface controllers, the rest; Stop all the reverse). Each shows
// its job's state, progress bar, status line (which VM it starts or waits for) and error.
// Stop all asks first.

import { ROOT, IFACE, h, replace, variants, attempt, button, confirmIn } from "./util.js";

// One of the two: `method` on the Manager, its status box `mv-ID-status`.
function groupJob(ctx, id, label, method, options) {
    const { client, jobs } = ctx;
    let path = null;
    const status = h("div", { id: "mv-" + id + "-status", "aria-live": "polite" });

    function show() {
        const job = path && jobs[path];
        if (!job) {
            if (path)
                replace(status, label + ": waiting for its job\u2026");
            return;
        }
        const pct = job.ProgressValid ? Math.round(job.Progress * 100) : null;
        replace(status,
                h("label", { for: "mv-" + id + "-progress" }, label + ": " + job.State + " "),
                h("progress", { id: "mv-" + id + "-progress", max: 1, value: job.ProgressValid ? job.Progress : 0 }),
                pct === null ? "" : " " + pct + " %",
                job.Status ? h("div", { class: "mv-note" }, job.Status) : null,
                job.Error ? h("div", { class: "mv-no" }, job.Error) : null);
    }
    jobs.addEventListener("added", show);
    jobs.addEventListener("changed", show);

    function run() {
        attempt(label, client.call(ROOT, IFACE.manager, method, [options()], { type: "a{sv}" }))
            .then(reply => {
                if (reply) {
                    path = reply[0];
                    show();
                }
            });
    }
    return { status, run };
}

// The toolbar: both buttons, Stop all's confirmation and timeout, both status boxes.
export function startStopAll(ctx) {
    const { vms } = ctx;
    const timeout = h("input", { type: "number", id: "mv-stop-all-timeout", min: 0, max: 3600,
                                 placeholder: "default" });
    const startAll = groupJob(ctx, "start-all", "Start all", "StartAll", () => ({}));
    const stopAll = groupJob(ctx, "stop-all", "Stop all", "StopAll", () => {
        const secs = parseInt(timeout.value, 10);
        return variants(secs > 0 ? { timeout_s: ["u", secs] } : {});
    });
    const confirmBox = h("div", { id: "mv-stop-all-confirm", class: "mv-confirm", role: "alertdialog",
                                  "aria-labelledby": "mv-stop-all-confirm-text", hidden: true });

    function askStopAll() {
        const running = Object.values(vms).filter(v => v.valid && v.State !== "shutoff").map(v => v.Name).sort();
        const wait = parseInt(timeout.value, 10) > 0 ? timeout.value + " s" : "the service's stop timeout";
        confirmIn(confirmBox, "Shut down every running VM (" + (running.length ? running.join(", ") : "none now") +
                  ")? The rest go first, then interface controllers, then network controllers; a VM still " +
                  "running after " + wait + " is destroyed.", "Stop all", stopAll.run);
    }

    const node = h("div", { class: "mv-toolbar" },
        h("div", {}, button("Start all (autostart VMs, in order)", startAll.run,
                            { id: "mv-start-all", class: "mv-btn mv-primary" }), startAll.status),
        h("div", {}, button("Stop all\u2026", askStopAll, { id: "mv-stop-all", class: "mv-btn mv-danger" }),
          h("label", { for: "mv-stop-all-timeout" }, " destroy after (seconds) ", timeout), stopAll.status),
        confirmBox);
    return { node };
}
