// The libvirt networks the VMs use, read-only: kind, bridge, active, whether the host is
// kept out of an isolated bridge (HostIsolated) and the VMs with a NIC on each. Live
// through the ObjectManager and PropertiesChanged like the VM list.

import { h, replace, liveRows, nameOf, cellRow } from "./util.js";

export function networksTable(ctx) {
    const { networks, vms } = ctx;
    const rows = new Map();
    const body = h("tbody", { id: "mv-net-body" });
    const empty = h("p", { class: "mv-muted", id: "mv-net-empty" }, "No networks.");

    function update(net) {
        let row = rows.get(net.path);
        if (!row) {
            row = cellRow(net.path, "mv-net-", ["name", "kind", "bridge", "active", "isolated", "vms"]);
            rows.set(net.path, row);
        }
        const { cells } = row;
        replace(cells.name, net.Name);
        replace(cells.kind, net.Kind);
        replace(cells.bridge, net.Bridge || h("span", { class: "mv-muted" }, "none"));
        replace(cells.active, net.Active ? "yes" : "no");
        replace(cells.isolated, net.Kind !== "isolated" ? h("span", { class: "mv-muted" }, "n/a")
            : net.HostIsolated ? h("span", { class: "mv-ok" }, "yes")
                : h("span", { class: net.Active ? "mv-no" : "mv-muted" }, net.Active ? "no" : "not running"));
        const names = (net.ConnectedVMs || []).map(path => nameOf(vms, path));
        replace(cells.vms, names.length ? names.join(", ") : h("span", { class: "mv-muted" }, "none"));
    }
    const place = liveRows(networks, body, empty, rows, update, (a, b) => String(a.Name).localeCompare(String(b.Name)));
    // A VM defined or renamed after its network was drawn: names follow.
    vms.addEventListener("added", () => { for (const net of Object.values(networks)) if (net.valid) update(net); place(); });

    const node = h("div", {},
        h("h2", {}, "Networks"),
        h("p", { class: "mv-note" },
          "The service makes the internal network (isolated: no host address, no forwarding) when the first VM " +
          "needs it, and starts a VM's networks before the VM. \u201cHost isolated\u201d says whether the host " +
          "is kept out of an isolated bridge (no ARP answers, no routing from it); it is only set for bridges " +
          "that exist on this host."),
        h("table", { "aria-label": "Networks" },
          h("thead", {}, h("tr", {}, ["Name", "Kind", "Bridge", "Active", "Host isolated", "VMs"]
                                      .map(t => h("th", { scope: "col" }, t)))),
          body),
        empty);
    return { node };
}
