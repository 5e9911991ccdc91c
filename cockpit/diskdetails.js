// One disk's details: resize (a shrink states what it does and asks first), clone, backups
// (run, list, restore), internal snapshots, the AutoGrow and versioning policies, and its
// files (diskfiles.js). Jobs show a progress bar and Cancel while they run.

import { IFACE, h, replace, formatBytes, formatTime, attempt, button, showJob, confirmIn, variants } from "./util.js";
import { sizeField, usageBars } from "./fields.js";
import { diskFiles } from "./diskfiles.js";
import { policyForms } from "./diskpolicies.js";
import { explainDisk } from "./explain.js";

export function diskDetails(ctx) {
    const { client, disks, usage } = ctx;
    let path = null;
    let backups = [];
    let points = {}; // backup id → [kind, parent] for the points of the disk's chain
    let shownPolicies = null; // the policies the forms show, so another disk change keeps edits

    const title = h("h2", { id: "mv-disk-details-title" });
    const facts = h("p", { class: "mv-note", id: "mv-disk-details-facts" });
    const jobBox = h("div", { id: "mv-disk-job", "aria-live": "polite" });
    const confirmBox = h("div", { id: "mv-disk-confirm", class: "mv-confirm", role: "alertdialog",
                                  "aria-labelledby": "mv-disk-confirm-text", hidden: true });
    const backupBody = h("tbody", { id: "mv-disk-backups" });
    const snapshotBody = h("tbody", { id: "mv-disk-snapshots" });
    const newSize = sizeField("mv-resize-size", "New size");
    const fstype = h("select", { id: "mv-format-fstype" },
                     ["ext4", "ext3", "ext2", "xfs", "btrfs", "vfat"].map(t => h("option", { value: t }, t)));
    const table = h("select", { id: "mv-format-table" },
                    [["gpt", "GPT"], ["mbr", "MBR"], ["none", "none (filesystem on the whole disk)"]]
                            .map(([v, t]) => h("option", { value: v }, t)));
    const fsLabel = h("input", { type: "text", id: "mv-format-label", maxlength: 255 });
    const cloneName = h("input", { type: "text", id: "mv-clone-name", required: true, maxlength: 64 });
    const cloneLinked = h("input", { type: "checkbox", id: "mv-clone-linked" });
    const compress = h("input", { type: "checkbox", id: "mv-backup-compress" });
    const tracking = h("p", { class: "mv-note", id: "mv-disk-tracking" });
    const restoreName = h("input", { type: "text", id: "mv-restore-name", maxlength: 64 });
    const snapshotName = h("input", { type: "text", id: "mv-disk-snapshot-name", required: true, maxlength: 64 });
    const files = diskFiles(ctx);
    const policies = policyForms(diskCall);

    const node = h("section", { id: "mv-disk-details", class: "mv-details", "aria-labelledby": "mv-disk-details-title",
                                hidden: true },
        button("Close details", () => show(null), { id: "mv-disk-details-close", class: "mv-btn mv-close" }),
        title, facts, jobBox, confirmBox,
        h("h3", {}, "Resize"),
        h("form", { class: "mv-form", id: "mv-resize-form", "aria-label": "Resize the disk", onsubmit: resize },
          newSize.node, h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-resize" }, "Resize")),
        h("p", { class: "mv-note" }, "Growing grows the image, its last partition and its filesystem. Shrinking " +
          "shrinks the filesystem first (ext2/3/4 and btrfs) and asks before it starts."),
        h("h3", {}, "Format"),
        h("form", { class: "mv-form", id: "mv-format-form", "aria-label": "Format the disk", onsubmit: format },
          h("label", { for: "mv-format-fstype" }, "Filesystem", fstype),
          h("label", { for: "mv-format-table" }, "Partition table", table),
          h("label", { for: "mv-format-label" }, "Label (optional)", fsLabel),
          h("button", { type: "submit", class: "mv-btn mv-danger", id: "mv-format" }, "Format\u2026")),
        h("h3", {}, "Clone"),
        h("form", { class: "mv-form", id: "mv-clone-form", "aria-label": "Clone the disk", onsubmit: clone },
          h("label", { for: "mv-clone-name" }, "New disk's name", cloneName),
          h("label", { class: "mv-check", for: "mv-clone-linked" }, cloneLinked,
            " linked (a qcow2 overlay on this disk, not a full copy)"),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-clone" }, "Clone")),
        h("h3", {}, "Backups"),
        h("div", { class: "mv-form", role: "group", "aria-label": "Back up the disk" },
          h("label", { class: "mv-check", for: "mv-backup-compress" }, compress,
            " a compressed whole copy (not a point of the chain)"),
          button("Back up now", backup, { id: "mv-backup", class: "mv-btn mv-primary" })),
        h("p", { class: "mv-note" }, "A backup is the next point of the disk's chain: the first is full, the next " +
          "ones hold only what changed since the point before (qcow2 disks). Any point can be restored, over the " +
          "disk (stopped) or as a new disk (even while a VM runs on this one)."),
        tracking,
        h("div", { class: "mv-form", role: "group", "aria-label": "Restore as a new disk" },
          h("label", { for: "mv-restore-name" }, "Name of the new disk for \u201cAs new disk\u201d", restoreName)),
        h("table", { "aria-label": "Backups of the disk" },
          h("thead", {}, h("tr", {}, ["Backup", "Kind", "Taken", "Size", "Digest", ""].map(t => h("th", { scope: "col" }, t)))),
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
        return attempt(what + " (" + label() + ")", client.call(path, IFACE.disk, method, args, { type }),
                       explainDisk(ctx, path));
    }

    function show(newPath) {
        if (newPath !== path) {
            // What was typed or ticked for one disk is not carried over to the next.
            for (const field of [cloneName, snapshotName, fsLabel, restoreName])
                field.value = "";
            cloneLinked.checked = compress.checked = false;
        }
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
                " allocated)" + (d.BackingDisk ? ", built on " + d.BackingDisk : ""), usageBars(usage.rows(d)));
        replace(tracking, trackingText(d.ChangeTracking));
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
              h("td", {}, id),
              h("td", {}, points[id] ? points[id][0] + (points[id][1] ? " on " + points[id][1] : "") : "whole copy"),
              h("td", {}, formatTime(created)), h("td", {}, formatBytes(size)),
              h("td", { class: "mv-hash" }, sha256),
              h("td", { class: "mv-actions" },
                button("Restore", () => confirm("Replace " + label() + " with backup " + id + " of " +
                                                formatTime(created) + "? The backup is verified first; what the " +
                                                "disk holds now is lost.", "Restore " + id, () => restore(id)),
                       { "data-action": "Restore", "aria-label": "Restore backup " + id }),
                button("As new disk", () => restoreAsNew(id),
                       { "data-action": "RestoreAsNew", "aria-label": "Restore backup " + id + " as a new disk" })))));
        if (!backups.length)
            backupBody.appendChild(h("tr", {}, h("td", { colspan: 6, class: "mv-muted" }, "No backups.")));
    }

    function loadBackups() {
        const shown = path;
        if (!disk())
            return;
        Promise.all([diskCall("ListBackups", [{}], "a{sv}", "ListBackups"),
                     diskCall("ListBackupPoints", [{}], "a{sv}", "ListBackupPoints")]).then(([reply, chain]) => {
            if (reply && path === shown) {
                backups = reply[0];
                points = {};
                for (const [id, kind, parent] of (chain ? chain[0] : []))
                    points[id] = [kind, parent];
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
        const used = usage.rows(d).reduce((sum, [, , u]) => sum + Number(u), 0);
        const held = !d.UsageSampled ? "Its filesystem usage has not been sampled since it last changed (Inspect, below, measures it). "
            : usage.refused(d) ? "Its filesystem usage is not shown to you (it needs the disk.inspect action). "
                : "Its filesystems hold " + formatBytes(used) + " (sampled " + formatTime(d.UsageSampled) + "). ";
        confirm("Shrink " + label() + " from " + formatBytes(d.VirtualSize) + " to " + formatBytes(size) + "? " + held +
                "The filesystem is checked and shrunk first, then the partition and the image; the service " +
                "refuses a size below what the data needs plus a margin.", "Shrink to " + formatBytes(size),
                () => go(true));
    }

    function format(event) {
        event.preventDefault();
        const d = disk();
        if (!d)
            return;
        const opts = { partition_table: ["s", table.value] };
        if (fsLabel.value)
            opts.label = ["s", fsLabel.value];
        confirm("Format " + label() + " as " + fstype.value + "? Everything on it is erased: a new " +
                (table.value === "none" ? "filesystem on the whole disk" : table.value.toUpperCase() +
                 " partition table with one partition") + ". " +
                ((d.Snapshots || []).length ? "Its snapshots are kept and can bring the old contents back. "
                    : "It has no snapshots, so nothing brings the old contents back (take a backup first). ") +
                "Until the job ends the disk stays as it is; Cancel leaves it untouched.",
                "Erase and format as " + fstype.value,
                () => runJob("Format as " + fstype.value,
                             diskCall("Format", [fstype.value, variants(opts)], "sa{sv}", "Format")));
    }

    function clone(event) {
        event.preventDefault();
        const opts = cloneLinked.checked ? { linked: ["b", true] } : {};
        runJob("Clone to " + cloneName.value, diskCall("Clone", [cloneName.value, variants(opts)], "sa{sv}", "Clone"));
    }

    function backup() {
        const opts = compress.checked ? { compress: ["b", true], mode: ["s", "image"] } : {};
        runJob("Backup", diskCall("Backup", [variants(opts)], "a{sv}", "Backup")).then(loadBackups);
    }

    function restore(id) {
        runJob("Restore " + id, diskCall("Restore", [id, {}], "sa{sv}", "Restore"));
    }

    function restoreAsNew(id) {
        if (!restoreName.reportValidity() || !restoreName.value) {
            restoreName.focus();
            return;
        }
        runJob("Restore " + id + " as " + restoreName.value,
               diskCall("Restore", [id, variants({ new_name: ["s", restoreName.value] })], "sa{sv}", "Restore as a new disk"));
    }

    // The service's ChangeTracking property in words: whether the next point is incremental,
    // and why not.
    function trackingText(t) {
        const v = key => t && t[key] ? t[key].v : undefined;
        const state = v("state");
        if (state === "tracking") {
            const changed = v("changed") !== undefined
                ? ", " + formatBytes(v("changed")) + " changed as of " + formatTime(v("measured")) : "";
            return "Change tracking: on since the point of " + formatTime(v("since")) + changed + "; the next point is incremental.";
        }
        if (state === "broken")
            return "Change tracking: broken, the next point is full: " + v("reason") + ".";
        return "Change tracking: none" + (v("reason") ? ": " + v("reason") : "") + ".";
    }

    function createSnapshot(event) {
        event.preventDefault();
        snapshotCall("CreateSnapshot", snapshotName.value).then(reply => { if (reply) snapshotName.value = ""; });
    }
    function snapshotCall(method, name) {
        return diskCall(method, [name, {}], "sa{sv}", method + " " + name);
    }

    disks.addEventListener("changed", (event, proxy) => { if (proxy.path === path) render(); });
    usage.onChange(changed => { if (changed === path) render(); });
    disks.addEventListener("removed", (event, proxy) => { if (proxy.path === path) show(null); });
    return { node, show };
}
