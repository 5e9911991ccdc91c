// Form fields and small displays the disk views share: a size in binary units, and
// filesystem usage bars.

import { h, formatBytes } from "./util.js";

// A size field: a number and a binary unit. `bytes()` is the size in bytes (NaN if empty).
export function sizeField(id, label, unit) {
    const number = h("input", { type: "number", id, min: 0, step: "any", required: true });
    const units = h("select", { id: id + "-unit", "aria-label": label + ": unit" },
                    ["MiB", "GiB", "TiB"].map(u => h("option", { value: u, selected: u === (unit || "GiB") }, u)));
    const factor = { MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };
    return {
        node: h("label", { for: id }, label, h("span", { class: "mv-size" }, number, units)),
        bytes: () => Math.round(parseFloat(number.value) * factor[units.value] / 512) * 512,
        clear: () => { number.value = ""; },
        // Shows `bytes` in the largest unit that holds it as a whole number (MiB at least).
        set: bytes => {
            const b = Number(bytes);
            const unit = ["TiB", "GiB"].find(u => b >= factor[u] && b % factor[u] === 0) || "MiB";
            number.value = String(Math.round(b / factor[unit] * 1000) / 1000);
            units.value = unit;
        },
    };
}

export function usageBars(fsUsage) {
    return (fsUsage || []).map(([device, size, used]) => {
        const fraction = size ? Number(used) / Number(size) : 0;
        return h("div", { class: "mv-usage" },
                 h("meter", { min: 0, max: 1, low: 0.75, high: 0.9, optimum: 0.2, value: fraction,
                              "aria-label": "Used on " + device }),
                 " " + device + ": " + formatBytes(used) + " of " + formatBytes(size) +
                 " (" + Math.round(fraction * 100) + " %)");
    });
}
