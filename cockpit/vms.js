// Virtual machines: the list (kept live by the ObjectManager), the lifecycle buttons,
// one VM's details (vmdetails.js), Start all and Stop all (vmgroups.js), the networks
// (networks.js) and defining a VM from a profile.

import { ROOT, IFACE, h, replace, formatMiB, variants, attempt, button, liveRows, cellRow } from "./util.js";
import { vmDetails } from "./vmdetails.js";
import { explainVM } from "./explain.js";
import { startStopAll } from "./vmgroups.js";
import { networksTable } from "./networks.js";

const ACTIONS = [
    // [label, method, states it makes sense in]
    ["Start", "Start", ["shutoff", "crashed"]],
    ["Shut down", "Shutdown", ["running"]],
    ["Reboot", "Reboot", ["running"]],
    ["Suspend", "Suspend", ["running"]],
    ["Resume", "Resume", ["paused"]],
    ["Destroy", "Destroy", ["running", "paused", "shutdown", "crashed", "pmsuspended", "blocked"]],
    ["Undefine", "Undefine", ["shutoff", "crashed"]],
];

export function vmsView(root, ctx) {
    const { client, vms, disks } = ctx;
    const rows = new Map(); // path -> {tr, cells, buttons}

    const body = h("tbody", { id: "mv-vm-body" });
    const empty = h("p", { class: "mv-muted", id: "mv-vm-empty" }, "No VMs are defined.");
    const timeout = h("input", { type: "number", id: "mv-shutdown-timeout", min: 0, max: 3600, value: 0 });
    const force = h("input", { type: "checkbox", id: "mv-shutdown-force" });
    const groups = startStopAll(ctx);
    const details = vmDetails(ctx);

    root.append(
        h("h2", {}, "Virtual machines"),
        h("p", { class: "mv-note" },
          "\u201cAutostart\u201d is the service's own flag, used by \u201cStart all\u201d (in order: " +
          "network controllers, interface controllers, the rest); it is not libvirt's autostart, " +
          "which the service does not use."),
        groups.node,
        h("div", { class: "mv-form", role: "group", "aria-label": "Shutdown options" },
          h("label", { for: "mv-shutdown-timeout" }, "Shutdown: wait up to (seconds, 0: do not wait)", timeout),
          h("label", { class: "mv-check", for: "mv-shutdown-force" }, force,
            " destroy the VM when the wait runs out")),
        h("table", { "aria-label": "Virtual machines" },
          h("thead", {}, h("tr", {}, ["Name", "State", "Profile", "Autostart (service)", "Ephemeral",
                                      "Resources", "Network interfaces", "Readiness", "Actions"]
                                      .map(t => h("th", { scope: "col" }, t)))),
          body),
        empty,
        details.node,
        ...defineForm(),
        networksTable(ctx).node);

    function call(vm, method, args, type, what) {
        return attempt(what + " " + (vm.Name || vm.path), client.call(vm.path, IFACE.vm, method, args, { type }),
                       explainVM(ctx, vm.path));
    }

    function act(path, method) {
        const vm = vms[path];
        if (!vm)
            return;
        if (method === "Shutdown") {
            const opts = {};
            const secs = parseInt(timeout.value, 10) || 0;
            if (secs > 0) {
                opts.timeout_s = ["u", secs];
                if (force.checked)
                    opts.force = ["b", true];
            }
            call(vm, method, [variants(opts)], "a{sv}", "Shutdown");
        } else if (method === "Undefine") {
            call(vm, method, [{}], "a{sv}", "Undefine");
        } else {
            call(vm, method, [{}], "a{sv}", method);
        }
    }

    function makeRow(path) {
        const { tr, cells } = cellRow(path, "mv-vm-",
                                      ["name", "state", "profile", "autostart", "ephemeral", "resources", "nics", "ready"]);
        const buttons = {};
        const actions = h("td", { class: "mv-actions" });
        for (const [label, method] of ACTIONS) {
            buttons[method] = button(label, () => act(path, method), { "data-action": method });
            actions.appendChild(buttons[method]);
        }
        buttons.Details = button("Details", () => details.show(path), { "data-action": "Details" });
        actions.appendChild(buttons.Details);
        tr.appendChild(actions);
        return { tr, cells, buttons };
    }

    function update(vm) {
        let row = rows.get(vm.path);
        if (!row) {
            row = makeRow(vm.path);
            rows.set(vm.path, row);
        }
        const { cells, buttons } = row;
        replace(cells.name, vm.Name);
        replace(cells.state, h("span", { class: "mv-badge mv-state", "data-state": vm.State }, vm.State),
                vm.StateReason ? h("div", { class: "mv-note" }, vm.StateReason) : null);
        replace(cells.profile, vm.Profile || h("span", { class: "mv-muted" }, "(defined elsewhere)"));
        replace(cells.autostart, vm.Autostart ? "yes" : "no",
                vm.Fallback ? h("div", { class: "mv-note" }, "fallback: " + vm.Fallback) : null);
        replace(cells.ephemeral, vm.Ephemeral ? "yes" : "no");
        replace(cells.resources, vm.VCPUs + " vCPU" + (vm.VCPUs === 1 ? "" : "s") + ", " + formatMiB(vm.MemoryMiB));
        const nics = (vm.Interfaces || []).map(([mac, network, model]) => {
            const details = [model, mac].filter(Boolean).join(", ");
            return h("div", {}, (network || "(no network)") + (details ? " (" + details + ")" : ""));
        });
        replace(cells.nics, nics.length ? nics : h("span", { class: "mv-muted" }, "none"));
        replace(cells.ready, vm.Readiness || "none",
                vm.GuestStatus ? h("div", { class: "mv-note" }, vm.GuestStatus) : null);
        const label = vm.Name || vm.path;
        for (const [text, method, states] of ACTIONS) {
            buttons[method].disabled = !states.includes(vm.State);
            buttons[method].setAttribute("aria-label", text + " " + label);
        }
        buttons.Details.setAttribute("aria-label", "Disks, shares and snapshots of " + label);
    }

    // Rows sorted by name (the service's own order for ListVMs).
    liveRows(vms, body, empty, rows, update, (a, b) => String(a.Name).localeCompare(String(b.Name)));

    function defineForm() {
        const name = h("input", { type: "text", id: "mv-define-name", required: true, maxlength: 64,
                                  pattern: "[A-Za-z0-9_][A-Za-z0-9._\\-]*" });
        const profile = h("select", { id: "mv-define-profile" });
        const description = h("p", { class: "mv-note", id: "mv-define-profile-description" });
        const memory = h("input", { type: "number", id: "mv-define-memory", min: 1, placeholder: "profile's" });
        const vcpus = h("input", { type: "number", id: "mv-define-vcpus", min: 1, placeholder: "profile's" });
        const autostart = h("input", { type: "checkbox", id: "mv-define-autostart" });
        const ephemeral = h("input", { type: "checkbox", id: "mv-define-ephemeral" });
        const diskChoice = h("select", { id: "mv-define-disks", multiple: true, size: 3 });
        const profiles = new Map();

        // The managed disks to attach (vda, vdb, ... in the order chosen here: by name).
        function fillDisks() {
            const chosen = new Set(Array.from(diskChoice.selectedOptions, o => o.value));
            const names = Object.values(disks).filter(d => d.valid).map(d => d.Name).sort();
            replace(diskChoice, names.map(n => h("option", { value: n }, n)));
            for (const option of diskChoice.options)
                option.selected = chosen.has(option.value);
        }
        for (const kind of ["added", "removed"])
            disks.addEventListener(kind, fillDisks);
        disks.wait(fillDisks);

        attempt("ListProfiles", client.call(ROOT, IFACE.manager, "ListProfiles", [{}], { type: "a{sv}" }))
            .then(reply => {
                if (!reply)
                    return;
                for (const [pname, pdesc] of reply[0]) {
                    profiles.set(pname, pdesc);
                    profile.appendChild(h("option", { value: pname }, pname));
                }
                showDescription();
            });
        function showDescription() {
            const text = profiles.get(profile.value);
            replace(description, text ? profile.value + " \u2014 " + text : "");
        }
        profile.addEventListener("change", showDescription);

        function submit(event) {
            event.preventDefault();
            const opts = {};
            if (memory.value)
                opts.memory_mib = ["t", parseInt(memory.value, 10)];
            if (vcpus.value)
                opts.vcpus = ["u", parseInt(vcpus.value, 10)];
            if (autostart.checked)
                opts.autostart = ["b", true];
            if (ephemeral.checked)
                opts.ephemeral = ["b", true];
            const chosenDisks = Array.from(diskChoice.selectedOptions, o => o.value);
            if (chosenDisks.length)
                opts.disks = ["as", chosenDisks];
            attempt("DefineVM " + name.value,
                    client.call(ROOT, IFACE.manager, "DefineVM", [name.value, profile.value, variants(opts)],
                                { type: "ssa{sv}" }))
                .then(reply => {
                    if (reply) {
                        name.value = "";
                        for (const option of diskChoice.options)
                            option.selected = false;
                    }
                });
        }

        const form = h("form", { class: "mv-form", id: "mv-define-form", "aria-label": "Define a VM from a profile",
                                 onsubmit: submit },
                       h("label", { for: "mv-define-name" }, "Name", name),
                       h("label", { for: "mv-define-profile" }, "Profile", profile),
                       h("label", { for: "mv-define-memory" }, "Memory (MiB)", memory),
                       h("label", { for: "mv-define-vcpus" }, "vCPUs", vcpus),
                       h("label", { for: "mv-define-disks" }, "Managed disks (vda, vdb, \u2026 by name)", diskChoice),
                       h("label", { class: "mv-check", for: "mv-define-autostart" }, autostart,
                         " autostart (service flag)"),
                       h("label", { class: "mv-check", for: "mv-define-ephemeral" }, ephemeral,
                         " ephemeral (undefined when it stops)"),
                       h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-define" }, "Define"));
        return [h("h2", {}, "Define a VM from a profile"), form, description];
    }

    return {};
}
