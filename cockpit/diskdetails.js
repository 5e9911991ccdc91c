// One disk's details: resize (a shrink states what it does and asks first), clone, backups
// (run, list, restore), internal snapshots, the AutoGrow and versioning policies, and its
// files (diskfiles.js). Jobs show a progress bar and Cancel while they run.

import { IFACE, h, replace, formatBytes, formatTime, variants, attempt, button, showJob, confirmIn } from "./util.js";
import { sizeField, usageBars } from "./fields.js";
import { diskFiles } from "./diskfiles.js";

export function diskDetails(ctx) {
    const { client, disks } = ctx;
    let path = null;
    let backups = [];
    let shownPolicies = null; // the policies the forms show, so another disk change keeps edits

    const title = h("h2", { id: "mv-disk-details-title" });
    const facts = h("p", { class: "mv-note", id: "mv-disk-details-facts" });
    const jobBox = h("div", { id: "mv-disk-job", "aria-live": "polite" });
    const confirmBox = h("div", { id: "mv-disk-confirm", class: "mv-confirm", role: "alertdialog",
                                  "aria-labelledby": "mv-disk-confirm-text", hidden: true });
    const backupBody = h("tbody", { id: "mv-disk-backups" });
    const snapshotBody = h("tbody", { id: "mv-disk-snapshots" });
    const newSize = sizeField("mv-resize-size", "New size");
    const cloneName = h("input", { type: "text", id: "mv-clone-name", required: true, maxlength: 64 });
    const cloneLinked = h("input", { type: "checkbox", id: "mv-clone-linked" });
    const compress = h("input", { type: "checkbox", id: "mv-backup-compress" });
    const snapshotName = h("input", { type: "text", id: "mv-disk-snapshot-name", required: true, maxlength: 64 });
    const files = diskFiles(ctx);
    const policies = policyForms();

    const node = h("section", { id: "mv-disk-details", class: "mv-details", "aria-labelledby": "mv-disk-details-title",
                                hidden: true },
        button("Close details", () => show(null), { id: "mv-disk-details-close", class: "mv-btn mv-close" }),
        title, facts, jobBox, confirmBox,
        h("h3", {}, "Resize"),
        h("form", { class: "mv-form", id: "mv-resize-form", "aria-label": "Resize the disk", onsubmit: resize },
          newSize.node, h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-resize" }, "Resize")),
        h("p", { class: "mv-note" }, "Growing grows the image, its last partition and its filesystem. Shrinking " +
          "shrinks the filesystem first (ext2/3/4 and btrfs) and asks before it starts."),
        h("h3", {}, "Clone"),
        h("form", { class: "mv-form", id: "mv-clone-form", "aria-label": "Clone the disk", onsubmit: clone },
          h("label", { for: "mv-clone-name" }, "New disk's name", cloneName),
          h("label", { class: "mv-check", for: "mv-clone-linked" }, cloneLinked,
            " linked (a qcow2 overlay on this disk, not a full copy)"),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-clone" }, "Clone")),
        h("h3", {}, "Backups"),
        h("div", { class: "mv-form", role: "group", "aria-label": "Back up the disk" },
          h("label", { class: "mv-check", for: "mv-backup-compress" }, compress, " compressed"),
          button("Back up now", backup, { id: "mv-backup", class: "mv-btn mv-primary" })),
        h("table", { "aria-label": "Backups of the disk" },
          h("thead", {}, h("tr", {}, ["Backup", "Taken", "Size", "SHA-256", ""].map(t => h("th", { scope: "col" }, t)))),
          backupBody),
        h("h3", {}, "Snapshots"),
        h("p", { class: "mv-note" }, "vm-NAME snapshots belong to a VM's snapshot NAME (the VM's details); " +
          "auto-TIME ones are taken and pruned by versioning."),
        h("table", { "aria-label": "Snapshots of the disk" },
          h("thead", {}, h("tr", {}, ["Name", "Created", "Kind", ""].map(t => h("th", { scope: "col" }, t)))),
          snapshotBody),
        h("form", { class: "mv-form", id: "mv-disk-snapshot-form", "aria-label": "Create a snapshot of the disk",
                    onsubmit: createSnapshot },
          h("label", { for: "mv-disk-snapshot-name" }, "Snapshot name", snapshotName),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-disk-snapshot-create" }, "Create snapshot")),
        h("h3", {}, "Policies"), policies.node,
        h("h3", {}, "Files"), files.node);

    function disk() {
        return path && disks[path] && disks[path].valid ? disks[path] : null;
    }
    function label() {
        return "disk " + (disk() ? disk().Name : path);
    }
    function diskCall(method, args, type, what) {
        if (!disk())
            return Promise.resolve(undefined);
        return attempt(what + " (" + label() + ")", client.call(path, IFACE.disk, method, args, { type }));
    }

    function show(newPath) {
        path = newPath;
        node.hidden = !disk();
        confirmBox.hidden = true;
        replace(jobBox);
        backups = [];
        shownPolicies = null;
        render();
        loadBackups();
        files.show(disk() ? path : null);
        if (disk())
            node.scrollIntoView({ block: "nearest" });
    }

    function render() {
        const d = disk();
        if (!d) {
            node.hidden = true;
            return;
        }
        node.dataset.path = d.path;
        replace(title, "Disk " + d.Name);
        replace(facts, d.ImageFormat + ", " + formatBytes(d.VirtualSize) + " (" + formatBytes(d.AllocatedSize) +
                " allocated)" + (d.BackingDisk ? ", built on " + d.BackingDisk : ""), usageBars(d.FilesystemUsage));
        replace(snapshotBody, (d.Snapshots || []).map(([name, created]) => {
            const kind = name.startsWith("vm-") ? "the VM's" : name.startsWith("auto-") ? "versioning's" : "this disk's";
            return h("tr", { "data-snapshot": name },
                     h("td", {}, name), h("td", {}, formatTime(created)), h("td", {}, kind),
                     h("td", { class: "mv-actions" },
                       button("Revert", () => confirm("Revert " + label() + " to snapshot " + name + "? What was " +
                                                      "written to it since is lost.", "Revert to " + name,
                                                      () => snapshotCall("RevertSnapshot", name)),
                              { "data-action": "Revert", "aria-label": "Revert to snapshot " + name }),
                       button("Delete", () => snapshotCall("DeleteSnapshot", name),
                              { "data-action": "Delete", "aria-label": "Delete snapshot " + name })));
        }));
        if (!(d.Snapshots || []).length)
            snapshotBody.appendChild(h("tr", {}, h("td", { colspan: 4, class: "mv-muted" }, "No snapshots.")));
        const current = JSON.stringify([d.AutoGrow, d.Versioning]);
        if (current !== shownPolicies) {
            shownPolicies = current;
            policies.render(d);
        }
    }

    function renderBackups() {
        replace(backupBody, backups.map(([id, created, size, sha256]) =>
            h("tr", { "data-backup": id },
              h("td", {}, id), h("td", {}, formatTime(created)), h("td", {}, formatBytes(size)),
              h("td", { class: "mv-hash" }, sha256),
              h("td", { class: "mv-actions" },
                button("Restore", () => confirm("Replace " + label() + " with backup " + id + " of " +
                                                formatTime(created) + "? Its checksum is verified first; what the " +
                                                "disk holds now is lost.", "Restore " + id, () => restore(id)),
                       { "data-action": "Restore", "aria-label": "Restore backup " + id })))));
        if (!backups.length)
            backupBody.appendChild(h("tr", {}, h("td", { colspan: 5, class: "mv-muted" }, "No backups.")));
    }

    function loadBackups() {
        const shown = path;
        if (!disk())
            return;
        diskCall("ListBackups", [{}], "a{sv}", "ListBackups").then(reply => {
            if (reply && path === shown) {
                backups = reply[0];
                renderBackups();
            }
        });
    }

    function confirm(text, yes, action) {
        confirmIn(confirmBox, text, yes, action);
    }

    function runJob(what, promise) {
        return promise.then(reply => reply ? showJob(ctx, jobBox, what, reply[0]) : undefined);
    }

    function resize(event) {
        event.preventDefault();
        const d = disk();
        const size = newSize.bytes();
        if (!d || !(size > 0))
            return;
        const go = shrink => runJob("Resize " + d.Name + " to " + formatBytes(size),
                                    diskCall("Resize", [size, variants(shrink ? { shrink: ["b", true] } : {})],
                                             "ta{sv}", "Resize"));
        if (size >= d.VirtualSize) {
            go(false);
            return;
        }
        const used = (d.FilesystemUsage || []).reduce((sum, [, , u]) => sum + Number(u), 0);
        confirm("Shrink " + label() + " from " + formatBytes(d.VirtualSize) + " to " + formatBytes(size) + "? " +
                (d.UsageSampled ? "Its filesystems hold " + formatBytes(used) + " (sampled " +
                 formatTime(d.UsageSampled) + "). " : "Its filesystem usage has not been sampled yet. ") +
                "The filesystem is checked and shrunk first, then the partition and the image; the service " +
                "refuses a size below what the data needs plus a margin.", "Shrink to " + formatBytes(size),
                () => go(true));
    }

    function clone(event) {
        event.preventDefault();
        const opts = cloneLinked.checked ? { linked: ["b", true] } : {};
        runJob("Clone to " + cloneName.value, diskCall("Clone", [cloneName.value, variants(opts)], "sa{sv}", "Clone"));
    }

    function backup() {
        const opts = compress.checked ? { compress: ["b", true] } : {};
        runJob("Backup", diskCall("Backup", [variants(opts)], "a{sv}", "Backup")).then(loadBackups);
    }

    function restore(id) {
        runJob("Restore " + id, diskCall("Restore", [id, {}], "sa{sv}", "Restore"));
    }

    function createSnapshot(event) {
        event.preventDefault();
        snapshotCall("CreateSnapshot", snapshotName.value).then(reply => { if (reply) snapshotName.value = ""; });
    }
    function snapshotCall(method, name) {
        return diskCall(method, [name, {}], "sa{sv}", method + " " + name);
    }

    function policyForms() {
        const f = {
            growEnabled: h("input", { type: "checkbox", id: "mv-autogrow-enabled" }),
            threshold: h("input", { type: "number", id: "mv-autogrow-threshold", min: 1, max: 100 }),
            step: sizeField("mv-autogrow-step", "Step"),
            max: sizeField("mv-autogrow-max", "At most"),
            verEnabled: h("input", { type: "checkbox", id: "mv-versioning-enabled" }),
            interval: h("input", { type: "number", id: "mv-versioning-interval", min: 60 }),
            keep: h("input", { type: "number", id: "mv-versioning-keep", min: 1 }),
            onStop: h("input", { type: "checkbox", id: "mv-versioning-onstop" }),
        };
        const unwrap = v => (v && typeof v === "object" && "v" in v ? v.v : v);
        function setSize(field, bytes) {
            const gib = Number(bytes) / 2 ** 30;
            field.node.querySelector("input").value = String(Math.round(gib * 1000) / 1000);
            field.node.querySelector("select").value = "GiB";
        }
        function render(d) {
            const g = d.AutoGrow || {};
            const v = d.Versioning || {};
            f.growEnabled.checked = Boolean(unwrap(g.enabled));
            f.threshold.value = String(Math.round(Number(unwrap(g.threshold) || 0) * 100));
            setSize(f.step, unwrap(g.step) || 0);
            setSize(f.max, unwrap(g.max) || 0);
            f.verEnabled.checked = Boolean(unwrap(v.enabled));
            f.interval.value = String(unwrap(v.interval_s) || 0);
            f.keep.value = String(unwrap(v.keep) || 0);
            f.onStop.checked = Boolean(unwrap(v.on_stop));
        }
        function saveGrow(event) {
            event.preventDefault();
            diskCall("SetAutoGrow", [variants({ enabled: ["b", f.growEnabled.checked],
                                                threshold: ["d", Number(f.threshold.value) / 100],
                                                step: ["t", f.step.bytes()], max: ["t", f.max.bytes()] })],
                     "a{sv}", "SetAutoGrow");
        }
        function saveVersioning(event) {
            event.preventDefault();
            diskCall("SetVersioning", [variants({ enabled: ["b", f.verEnabled.checked],
                                                  interval_s: ["u", parseInt(f.interval.value, 10) || 0],
                                                  keep: ["u", parseInt(f.keep.value, 10) || 0],
                                                  on_stop: ["b", f.onStop.checked] })],
                     "a{sv}", "SetVersioning");
        }
        const node = h("div", {},
            h("form", { class: "mv-form", id: "mv-autogrow-form", "aria-label": "AutoGrow policy", onsubmit: saveGrow },
              h("label", { class: "mv-check", for: "mv-autogrow-enabled" }, f.growEnabled, " AutoGrow"),
              h("label", { for: "mv-autogrow-threshold" }, "When a filesystem is this full (%)", f.threshold),
              f.step.node, f.max.node,
              h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-autogrow-save" }, "Save AutoGrow")),
            h("form", { class: "mv-form", id: "mv-versioning-form", "aria-label": "Versioning policy",
                        onsubmit: saveVersioning },
              h("label", { class: "mv-check", for: "mv-versioning-enabled" }, f.verEnabled, " Versioning"),
              h("label", { for: "mv-versioning-interval" }, "Every (seconds)", f.interval),
              h("label", { for: "mv-versioning-keep" }, "Keep (snapshots)", f.keep),
              h("label", { class: "mv-check", for: "mv-versioning-onstop" }, f.onStop, " also at each stop of its VM"),
              h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-versioning-save" }, "Save versioning")));
        return { node, render };
    }

    disks.addEventListener("changed", (event, proxy) => { if (proxy.path === path) render(); });
    disks.addEventListener("removed", (event, proxy) => { if (proxy.path === path) show(null); });
    return { node, show };
}
