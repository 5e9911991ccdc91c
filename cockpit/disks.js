// Disks: the managed disks (kept live by the ObjectManager and PropertiesChanged) with
// format, sizes, filesystem usage, backing disk, overlays and the VMs using each; creating
// one; UsageHigh as it arrives; one disk's details (diskdetails.js).

import { ROOT, IFACE, h, replace, formatBytes, formatTime, variants, attempt, button, liveRows, nameOf, cellRow }
    from "./util.js";
import { sizeField } from "./fields.js";
import { diskDetails } from "./diskdetails.js";

export function disksView(root, ctx) {
    const { client, disks, vms, usage } = ctx;
    const rows = new Map();
    const body = h("tbody", { id: "mv-disk-body" });
    const empty = h("p", { class: "mv-muted", id: "mv-disk-empty" }, "No managed disks.");
    const events = h("ul", { class: "mv-events mv-usage-events", id: "mv-disk-events", "aria-live": "polite" });
    const details = diskDetails(ctx);

    root.append(
        h("h2", {}, "Disks"),
        h("p", { class: "mv-note" },
          "The images in the service's image directory. Filesystem usage is the last sample " +
          "(the service measures each disk read-only every few minutes, and when it is inspected); " +
          "it comes from inside the image, so only those allowed to inspect disks see it."),
        h("table", { "aria-label": "Disks" },
          h("thead", {}, h("tr", {}, ["Name", "Format", "Size", "Filesystems", "Backing disk", "Overlays",
                                      "Used by", ""].map(t => h("th", { scope: "col" }, t)))),
          body),
        empty,
        h("h3", {}, "Usage warnings (since this page opened)"), events,
        details.node,
        ...createForm());

    function update(disk) {
        let row = rows.get(disk.path);
        if (!row) {
            const { tr, cells } = cellRow(disk.path, "mv-disk-",
                                          ["name", "format", "size", "usage", "backing", "overlays", "used"]);
            const open = button("Details", () => details.show(disk.path), { "data-action": "Details" });
            tr.appendChild(h("td", { class: "mv-actions" }, open));
            row = { tr, cells, open };
            rows.set(disk.path, row);
        }
        const { cells, open } = row;
        replace(cells.name, disk.Name);
        replace(cells.format, disk.ImageFormat);
        replace(cells.size, h("span", { class: "mv-disk-virtual" }, formatBytes(disk.VirtualSize)),
                h("div", { class: "mv-note" }, formatBytes(disk.AllocatedSize) + " allocated"));
        replace(cells.usage, ...usage.view(disk),
                disk.UsageSampled ? h("div", { class: "mv-note" }, "sampled " + formatTime(disk.UsageSampled)) : null);
        replace(cells.backing, disk.BackingDisk || h("span", { class: "mv-muted" }, "none"));
        replace(cells.overlays, (disk.Overlays || []).map(p => h("div", {}, nameOf(disks, p))));
        replace(cells.used, (disk.AttachedTo || []).map(p => h("div", {}, "VM " + nameOf(vms, p))));
        open.setAttribute("aria-label", "Details of disk " + disk.Name);
    }

    liveRows(disks, body, empty, rows, update, (a, b) => String(a.Name).localeCompare(String(b.Name)));
    // VM names can arrive after the disks that name them.
    vms.addEventListener("added", () => { for (const d of Object.values(disks)) update(d); });
    usage.onChange(path => { if (disks[path]) update(disks[path]); });

    // The signal carries the AutoGrow threshold that was reached, not the measured figure.
    client.subscribe({ interface: IFACE.disk, member: "UsageHigh" }, (path, iface, signal, args) => {
        const percent = Math.round(Number(args[0]) * 100);
        events.prepend(h("li", { class: "mv-no" }, new Date().toLocaleTimeString() + " UsageHigh: disk " +
                         nameOf(disks, path) + " reached its AutoGrow threshold of " + percent +
                         " % (its fullest filesystem)"));
    });

    function createForm() {
        const diskName = h("input", { type: "text", id: "mv-create-disk-name", required: true, maxlength: 64,
                                      pattern: "[A-Za-z0-9_][A-Za-z0-9._\\-]*" });
        const size = sizeField("mv-create-disk-size", "Size");
        const format = h("select", { id: "mv-create-disk-format" },
                         h("option", { value: "qcow2" }, "qcow2"), h("option", { value: "raw" }, "raw"));
        const backing = h("select", { id: "mv-create-disk-backing" });
        function fillBacking() {
            const current = backing.value;
            replace(backing, h("option", { value: "" }, "none"),
                    Object.values(disks).filter(d => d.valid).map(d => h("option", { value: d.Name }, d.Name)));
            backing.value = current;
        }
        for (const kind of ["added", "removed"])
            disks.addEventListener(kind, fillBacking);
        disks.wait(fillBacking);

        function submit(event) {
            event.preventDefault();
            const opts = backing.value ? { backing: ["s", backing.value] } : {};
            attempt("CreateDisk " + diskName.value,
                    client.call(ROOT, IFACE.manager, "CreateDisk",
                                [diskName.value, size.bytes(), format.value, variants(opts)], { type: "stsa{sv}" }))
                .then(reply => { if (reply) { diskName.value = ""; size.clear(); } });
        }
        return [h("h2", {}, "Create a disk"),
            h("form", { class: "mv-form", id: "mv-create-disk-form", "aria-label": "Create a disk", onsubmit: submit },
              h("label", { for: "mv-create-disk-name" }, "Name", diskName),
              size.node,
              h("label", { for: "mv-create-disk-format" }, "Format", format),
              h("label", { for: "mv-create-disk-backing" }, "Backing disk (qcow2 overlay)", backing),
              h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-create-disk" }, "Create"))];
    }
    return {};
}
