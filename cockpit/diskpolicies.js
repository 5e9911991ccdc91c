// A disk's AutoGrow and versioning policies as two forms. `render(disk)` fills them from
// the disk's properties (the caller calls it only when the policies change, so an edit in
// progress is kept); saving calls SetAutoGrow or SetVersioning through `diskCall`.

import { h, variants } from "./util.js";
import { sizeField } from "./fields.js";

export function policyForms(diskCall) {
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
    function render(d) {
        const g = d.AutoGrow || {};
        const v = d.Versioning || {};
        f.growEnabled.checked = Boolean(unwrap(g.enabled));
        f.threshold.value = String(Math.round(Number(unwrap(g.threshold) || 0) * 100));
        f.step.set(unwrap(g.step) || 0);
        f.max.set(unwrap(g.max) || 0);
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
        h("p", { class: "mv-note" }, "When a usage sample (every few minutes, or Inspect) finds the fullest filesystem " +
          "past the threshold, the disk warns (UsageHigh, listed above the disks) whether AutoGrow is on or not. " +
          "With AutoGrow on, the disk and its filesystem then grow by the step, at once if no VM runs on it, " +
          "otherwise when that VM stops. \u201cAt most\u201d is the size it never grows past: to turn AutoGrow on " +
          "it must be above the disk's size (0 means not set)."),
        h("form", { class: "mv-form", id: "mv-versioning-form", "aria-label": "Versioning policy",
                    onsubmit: saveVersioning },
          h("label", { class: "mv-check", for: "mv-versioning-enabled" }, f.verEnabled, " Versioning"),
          h("label", { for: "mv-versioning-interval" }, "Every (seconds)", f.interval),
          h("label", { for: "mv-versioning-keep" }, "Keep (snapshots)", f.keep),
          h("label", { class: "mv-check", for: "mv-versioning-onstop" }, f.onStop, " also at each stop of its VM"),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-versioning-save" }, "Save versioning")));
    return { node, render };
}
