// One VM's details under the VM list: its autostart settings (vmautostart.js), its disks
// (attach, detach), its 9p shares (add, remove) and its snapshots (create, revert,
// delete). Live: the VM's Disks and Shares properties, and its managed disks' Snapshots,
// which ListSnapshots is read again from.

import { IFACE, h, replace, formatTime, variants, attempt, button, showJob, confirmIn } from "./util.js";
import { explainVM } from "./explain.js";
import { autostartForm } from "./vmautostart.js";

const TARGET = /^(vd|sd|hd)[a-z]{1,2}$/;

export function vmDetails(ctx) {
    const { client, vms, disks } = ctx;
    let path = null; // the VM shown
    let snapshots = [];

    const title = h("h2", { id: "mv-details-title" });
    const stateNote = h("p", { class: "mv-note", id: "mv-details-state" });
    const diskBody = h("tbody", { id: "mv-details-disks" });
    const shareBody = h("tbody", { id: "mv-details-shares" });
    const snapshotBody = h("tbody", { id: "mv-details-snapshots" });
    const snapshotStatus = h("div", { id: "mv-snapshot-status", "aria-live": "polite" });
    const confirmBox = h("div", { id: "mv-snapshot-confirm", class: "mv-confirm", role: "alertdialog",
                                  "aria-labelledby": "mv-snapshot-confirm-text", hidden: true });
    const diskNames = h("datalist", { id: "mv-managed-disks" });

    const attachDisk = h("input", { type: "text", id: "mv-attach-disk", list: "mv-managed-disks", required: true });
    const attachTarget = h("input", { type: "text", id: "mv-attach-target", required: true, placeholder: "vdb",
                                      pattern: TARGET.source.slice(1, -1), maxlength: 4 });
    const attachReadonly = h("input", { type: "checkbox", id: "mv-attach-readonly" });
    const sharePath = h("input", { type: "text", id: "mv-share-path", required: true, placeholder: "/srv/share" });
    const shareTag = h("input", { type: "text", id: "mv-share-tag", required: true, maxlength: 31,
                                  pattern: "[A-Za-z0-9._\\-]{1,31}" });
    const shareReadonly = h("input", { type: "checkbox", id: "mv-share-readonly" });
    const shareAdd = h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-share-add" }, "Add share");
    const snapshotName = h("input", { type: "text", id: "mv-snapshot-name", required: true, maxlength: 60,
                                      pattern: "[A-Za-z0-9._\\-]+" });
    const snapshotCreate = h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-snapshot-create" },
                             "Create snapshot");
    const autostart = autostartForm(ctx, vmCall);
    const shutoffNotes = [];
    function shutoffNote(what) {
        const note = h("p", { class: "mv-note mv-shutoff-only" }, what + " only while the VM is shut off.");
        shutoffNotes.push(note);
        return note;
    }

    const node = h("section", { id: "mv-vm-details", class: "mv-details", "aria-labelledby": "mv-details-title",
                                hidden: true },
        button("Close details", () => show(null), { id: "mv-details-close", class: "mv-btn mv-close" }),
        title, stateNote,
        h("h3", {}, "Autostart"), autostart.node,
        h("h3", {}, "Disks"),
        h("table", { "aria-label": "Disks of the VM" },
          h("thead", {}, h("tr", {}, ["Target", "Image", "Format", "Managed disk", ""]
                                      .map(t => h("th", { scope: "col" }, t)))),
          diskBody),
        h("form", { class: "mv-form", id: "mv-attach-form", "aria-label": "Attach a disk", onsubmit: attach },
          h("label", { for: "mv-attach-disk" }, "Managed disk, or an image path under an allowed root", attachDisk),
          diskNames,
          h("label", { for: "mv-attach-target" }, "Target (vdX, sdX, hdX)", attachTarget),
          h("label", { class: "mv-check", for: "mv-attach-readonly" }, attachReadonly, " read-only"),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-attach" }, "Attach")),
        h("p", { class: "mv-note" },
          "While the VM runs, attach and detach change the running VM and its definition; a detach " +
          "waits for the guest to let go of the disk."),
        h("h3", {}, "Shares (9p)"),
        h("table", { "aria-label": "9p shares of the VM" },
          h("thead", {}, h("tr", {}, ["Host path", "Tag", ""].map(t => h("th", { scope: "col" }, t)))),
          shareBody),
        h("form", { class: "mv-form", id: "mv-share-form", "aria-label": "Add a 9p share", onsubmit: addShare },
          h("label", { for: "mv-share-path" }, "Host path (under the service's share roots)", sharePath),
          h("label", { for: "mv-share-tag" }, "Tag", shareTag),
          h("label", { class: "mv-check", for: "mv-share-readonly" }, shareReadonly, " read-only"),
          shareAdd),
        shutoffNote("9p shares can be added or removed"),
        h("h3", {}, "Snapshots"),
        h("p", { class: "mv-note" },
          "A VM snapshot is the internal snapshot vm-NAME on every managed qcow2 disk of the VM."),
        h("table", { "aria-label": "Snapshots of the VM" },
          h("thead", {}, h("tr", {}, ["Name", "Created", ""].map(t => h("th", { scope: "col" }, t)))),
          snapshotBody),
        confirmBox,
        h("form", { class: "mv-form", id: "mv-snapshot-form", "aria-label": "Create a snapshot",
                    onsubmit: createSnapshot },
          h("label", { for: "mv-snapshot-name" }, "Snapshot name", snapshotName),
          snapshotCreate),
        shutoffNote("Snapshots can be created, reverted or deleted"),
        snapshotStatus);

    function vm() {
        return path && vms[path] && vms[path].valid ? vms[path] : null;
    }

    function vmCall(method, args, type, what) {
        const v = vm();
        if (!v)
            return Promise.resolve(undefined);
        return attempt(what + " (VM " + v.Name + ")", client.call(v.path, IFACE.vm, method, args, { type }),
                       explainVM(ctx, v.path));
    }

    function show(newPath) {
        path = newPath;
        node.hidden = !vm();
        confirmBox.hidden = true;
        replace(snapshotStatus);
        snapshots = [];
        render();
        loadSnapshots();
        if (vm())
            node.scrollIntoView({ block: "nearest" });
    }

    function render() {
        const v = vm();
        if (!v) {
            node.hidden = true;
            return;
        }
        node.dataset.path = v.path;
        replace(title, "Details: " + v.Name);
        autostart.render(v);
        const shutoff = v.State === "shutoff";
        replace(stateNote, "State: " + v.State + (shutoff ? "" : " (shares and snapshots need it shut off)"));
        replace(diskBody, (v.Disks || []).map(([target, source, format, disk]) =>
            h("tr", { "data-target": target },
              h("td", {}, target), h("td", {}, source), h("td", {}, format),
              h("td", {}, disk && disk !== "/" && disks[disk] ? disks[disk].Name : h("span", { class: "mv-muted" }, "not managed")),
              h("td", { class: "mv-actions" },
                button("Detach", () => detach(target), { "data-action": "Detach", "aria-label": "Detach " + target })))));
        if (!(v.Disks || []).length)
            diskBody.appendChild(h("tr", {}, h("td", { colspan: 5, class: "mv-muted" }, "No disks.")));
        replace(shareBody, (v.Shares || []).map(([hostPath, tag]) =>
            h("tr", { "data-tag": tag },
              h("td", {}, hostPath), h("td", {}, tag),
              h("td", { class: "mv-actions" },
                button("Remove", () => removeShare(tag),
                       { "data-action": "RemoveShare", "aria-label": "Remove share " + tag, disabled: !shutoff })))));
        if (!(v.Shares || []).length)
            shareBody.appendChild(h("tr", {}, h("td", { colspan: 3, class: "mv-muted" }, "No shares.")));
        renderSnapshots();
        shareAdd.disabled = !shutoff;
        snapshotCreate.disabled = !shutoff;
        for (const note of shutoffNotes)
            note.hidden = shutoff;
    }

    function renderSnapshots() {
        const v = vm();
        const shutoff = v && v.State === "shutoff";
        replace(snapshotBody, snapshots.map(([name, created]) =>
            h("tr", { "data-snapshot": name },
              h("td", {}, name), h("td", {}, formatTime(created)),
              h("td", { class: "mv-actions" },
                button("Revert", () => confirmRevert(name),
                       { "data-action": "Revert", "aria-label": "Revert to snapshot " + name, disabled: !shutoff }),
                button("Delete", () => deleteSnapshot(name),
                       { "data-action": "Delete", "aria-label": "Delete snapshot " + name, disabled: !shutoff })))));
        if (!snapshots.length)
            snapshotBody.appendChild(h("tr", {}, h("td", { colspan: 3, class: "mv-muted" }, "No snapshots.")));
    }

    function loadSnapshots() {
        const shown = path;
        if (!vm())
            return;
        vmCall("ListSnapshots", [{}], "a{sv}", "ListSnapshots").then(reply => {
            if (reply && path === shown) {
                snapshots = reply[0];
                renderSnapshots();
            }
        });
    }

    function attach(event) {
        event.preventDefault();
        if (!TARGET.test(attachTarget.value))
            return; // the input's own pattern says why
        const opts = attachReadonly.checked ? { readonly: ["b", true] } : {};
        vmCall("AttachDisk", [attachDisk.value, attachTarget.value, variants(opts)], "ssa{sv}",
               "AttachDisk " + attachDisk.value + " as " + attachTarget.value)
            .then(reply => { if (reply) { attachDisk.value = ""; attachTarget.value = ""; } });
    }

    function detach(target) {
        vmCall("DetachDisk", [target, {}], "sa{sv}", "DetachDisk " + target);
    }

    function addShare(event) {
        event.preventDefault();
        const opts = shareReadonly.checked ? { readonly: ["b", true] } : {};
        vmCall("AddShare", [sharePath.value, shareTag.value, variants(opts)], "ssa{sv}",
               "AddShare " + sharePath.value + " as " + shareTag.value)
            .then(reply => { if (reply) { sharePath.value = ""; shareTag.value = ""; } });
    }

    function removeShare(tag) {
        vmCall("RemoveShare", [tag, {}], "sa{sv}", "RemoveShare " + tag);
    }

    // Create and Revert are jobs: their progress, state and Cancel show under the table.
    function runJob(method, name) {
        vmCall(method, [name, {}], "sa{sv}", method + " " + name).then(reply => {
            if (reply)
                showJob(ctx, snapshotStatus, method + " " + name, reply[0]).then(loadSnapshots);
        });
    }

    function createSnapshot(event) {
        event.preventDefault();
        runJob("CreateSnapshot", snapshotName.value);
        snapshotName.value = "";
    }

    function confirmRevert(name) {
        confirmIn(confirmBox, "Revert every managed disk of the VM to snapshot " + name + "? What was written " +
                  "to them since that snapshot is lost.", "Revert to " + name, () => runJob("RevertSnapshot", name),
                  "Keep the disks as they are");
    }

    function deleteSnapshot(name) {
        vmCall("DeleteSnapshot", [name, {}], "sa{sv}", "DeleteSnapshot " + name).then(loadSnapshots);
    }

    vms.addEventListener("changed", (event, proxy) => { if (proxy.path === path) render(); });
    vms.addEventListener("removed", (event, proxy) => { if (proxy.path === path) show(null); });
    // Another client's snapshot calls change the Snapshots of the VM's managed disks.
    function diskChanged(event, proxy) {
        const v = vm();
        replace(diskNames, Object.values(disks).map(d => h("option", { value: d.Name })));
        if (v && (v.Disks || []).some(([, , , disk]) => disk === proxy.path))
            loadSnapshots();
        if (v)
            render();
    }
    for (const kind of ["added", "changed", "removed"])
        disks.addEventListener(kind, diskChanged);

    return { node, show, shown: () => path };
}
