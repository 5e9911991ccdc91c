// Overview: the service and libvirt, the host settings (compliance, details, the
// Enforcing switch, Apply, live Drifted/Reverted messages) and the running jobs.

import { ROOT, IFACE, h, replace, formatTime, attempt, button, lastSegment } from "./util.js";

export function overviewView(root, ctx) {
    const { client, manager, settings, jobs } = ctx;

    const facts = h("dl", { class: "mv-facts", id: "mv-service-facts" });
    const settingsBody = h("tbody", { id: "mv-settings-body" });
    const lastCheck = h("span", { id: "mv-last-check" });
    const enforcing = h("input", { type: "checkbox", id: "mv-enforcing", role: "switch" });
    const applyButton = button("Apply all settings", apply, { id: "mv-apply", class: "mv-btn mv-primary" });
    const checkButton = button("Check now", check, { id: "mv-check" });
    const events = h("ul", { class: "mv-events", id: "mv-setting-events", "aria-live": "polite" });
    const running = h("ul", { id: "mv-running-jobs" });

    root.append(
        h("h2", {}, "Service"), facts,
        h("h2", {}, "Host settings"),
        h("p", { class: "mv-note" }, "Last check: ", lastCheck),
        h("div", {},
          h("label", { class: "mv-switch", for: "mv-enforcing" }, enforcing,
            "Enforcing: restore a setting as soon as it drifts"),
          " ", applyButton, checkButton),
        h("table", { "aria-label": "Host settings" },
          h("thead", {}, h("tr", {}, h("th", {}, "Setting"), h("th", {}, "Description"),
                           h("th", {}, "Compliant"), h("th", {}, "Details"))),
          settingsBody),
        h("h2", {}, "Drift and reverts (since this page opened)"), events,
        h("h2", {}, "Running jobs"), running);

    function fact(term, value, id) {
        return [h("dt", {}, term), h("dd", { id }, value)];
    }

    function renderManager() {
        if (!manager.valid) {
            replace(facts, fact("Service", "not reachable", "mv-service-state"));
            return;
        }
        const connected = manager.LibvirtConnected;
        replace(facts,
                fact("libvirt", h("span", { class: connected ? "mv-ok" : "mv-no" },
                                  connected ? "connected" : "not connected (VM calls fail until it is back)"),
                     "mv-libvirt"),
                fact("libvirt URI", manager.LibvirtURI, "mv-libvirt-uri"),
                fact("Service version", manager.Version + " (API " + manager.APIVersion + ")", "mv-version"),
                fact("Image directory", manager.ImageDirectory, "mv-image-dir"),
                fact("Backup directory", manager.BackupDirectory, "mv-backup-dir"));
    }

    function renderSettings() {
        if (!settings.valid) {
            replace(settingsBody, h("tr", {}, h("td", { colspan: 4 }, "No settings object.")));
            return;
        }
        enforcing.checked = Boolean(settings.Enforcing);
        replace(lastCheck, formatTime(settings.LastCheck));
        const rows = (settings.Settings || []).map(([id, description, compliant, detail]) =>
            h("tr", { "data-setting": id },
              h("td", {}, id), h("td", {}, description),
              h("td", { class: compliant ? "mv-ok" : "mv-no" }, compliant ? "yes" : "no"),
              h("td", {}, detail)));
        replace(settingsBody, rows);
    }

    function renderJobs() {
        const list = Object.values(jobs).filter(job => job.State === "running");
        if (list.length === 0) {
            replace(running, h("li", { class: "mv-muted" }, "No job is running."));
            return;
        }
        replace(running, list.map(job =>
            h("li", {}, job.Operation + " on " + (job.Target === ROOT ? "the host" : lastSegment(job.Target)) +
              (job.ProgressValid ? " \u2014 " + Math.round(job.Progress * 100) + " %" : "") +
              (job.Status ? " \u2014 " + job.Status : ""))));
    }

    function note(kind, text, good) {
        const item = h("li", { "data-event": kind, class: good === false ? "mv-no" : "" },
                       new Date().toLocaleString() + " \u2014 " + kind + ": " + text);
        events.prepend(item);
    }

    enforcing.addEventListener("change", () => {
        const want = enforcing.checked;
        attempt("SetEnforcing", client.call(ROOT + "/settings", IFACE.settings, "SetEnforcing",
                                            [want, {}], { type: "ba{sv}" }))
            .then(() => { enforcing.checked = Boolean(settings.Enforcing); });
    });

    function apply() {
        applyButton.disabled = true;
        attempt("Apply", client.call(ROOT + "/settings", IFACE.settings, "Apply", [[], {}],
                                     { type: "asa{sv}" }))
            .then(reply => {
                applyButton.disabled = false;
                if (reply) {
                    const changed = reply[0].filter(r => r[1]).map(r => r[0]);
                    note("Applied", changed.length ? "changed " + changed.join(", ") : "nothing to change");
                }
            });
    }

    function check() {
        attempt("Check", client.call(ROOT + "/settings", IFACE.settings, "Check", [{}], { type: "a{sv}" }));
    }

    client.subscribe({ interface: IFACE.settings, member: "Drifted" },
                     (path, iface, signal, args) => note("Drifted", args[0] + ": " + args[1], false));
    client.subscribe({ interface: IFACE.settings, member: "Reverted" },
                     (path, iface, signal, args) =>
                         note("Reverted", args[0] + (args[1] ? " restored" : " NOT restored") +
                              (args[2] ? ": " + args[2] : ""), args[1]));

    manager.addEventListener("changed", renderManager);
    manager.wait(renderManager);
    settings.addEventListener("changed", renderSettings);
    settings.wait(renderSettings);
    for (const event of ["added", "changed", "removed"])
        jobs.addEventListener(event, renderJobs);
    jobs.wait(renderJobs);
    return {};
}
