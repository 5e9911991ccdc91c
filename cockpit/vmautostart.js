// A VM's autostart settings as a form: the service's own autostart flag (what Start all
// starts; not libvirt's), the fallback VM Start all starts instead when this one does not
// become ready in time, and how long to wait for its READY=1. Saved with SetAutostart.
// `render(vm)` fills the form only when the VM's Autostart or Fallback changed, so an edit
// in progress is kept.

import { h, replace, variants } from "./util.js";

export function autostartForm(ctx, vmCall) {
    const { vms } = ctx;
    let shown = null;
    let current = null;
    const enabled = h("input", { type: "checkbox", id: "mv-autostart-enabled" });
    const fallback = h("select", { id: "mv-autostart-fallback" });
    const timeout = h("input", { type: "number", id: "mv-autostart-timeout", min: 0, max: 86400,
                                 placeholder: "unchanged" });

    function fillFallbacks(v) {
        const others = Object.values(vms).filter(o => o.valid && o.path !== v.path).map(o => o.Name).sort();
        replace(fallback, h("option", { value: "" }, "none"), others.map(n => h("option", { value: n }, n)));
        if (v.Fallback && !others.includes(v.Fallback))
            fallback.appendChild(h("option", { value: v.Fallback }, v.Fallback + " (not defined)"));
        fallback.value = v.Fallback || "";
    }

    function render(v) {
        current = v;
        const now = JSON.stringify([v.path, v.Autostart, v.Fallback]);
        if (now === shown)
            return;
        shown = now;
        enabled.checked = Boolean(v.Autostart);
        fillFallbacks(v);
        timeout.value = "";
    }

    function save(event) {
        event.preventDefault();
        const opts = { fallback: ["s", fallback.value] };
        if (timeout.value !== "")
            opts.ready_timeout_s = ["u", parseInt(timeout.value, 10) || 0];
        vmCall("SetAutostart", [enabled.checked, variants(opts)], "ba{sv}", "SetAutostart");
    }

    // Other VMs come and go: the fallback list follows (keeping the choice).
    for (const kind of ["added", "removed"])
        vms.addEventListener(kind, () => {
            if (current && current.valid) {
                const chosen = fallback.value;
                fillFallbacks(current);
                fallback.value = chosen;
            }
        });

    const node = h("div", {},
        h("form", { class: "mv-form", id: "mv-autostart-form", "aria-label": "Autostart of the VM", onsubmit: save },
          h("label", { class: "mv-check", for: "mv-autostart-enabled" }, enabled, " autostart (Start all starts it)"),
          h("label", { for: "mv-autostart-fallback" }, "Fallback VM", fallback),
          h("label", { for: "mv-autostart-timeout" }, "Wait for READY=1 (seconds; 0: the service's default)", timeout),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-autostart-save" }, "Save autostart")),
        h("p", { class: "mv-note" },
          "This is the service's flag, kept in the VM's metadata, not libvirt's autostart. Start all starts " +
          "network controllers, then interface controllers, then the rest, each group once the one before is " +
          "ready; when this VM is not ready in time, the fallback VM is started in its place."));
    return { node, render };
}
