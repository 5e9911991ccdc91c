// Small helpers shared by the views. Every string that comes from the service, a guest or
// another user goes into the page as a text node (h() never parses markup).

/* global cockpit */

import { explainJob } from "./explain.js";

export const SERVICE = "org.multiverse.Controller";
export const ROOT = "/org/multiverse/Controller";
export const IFACE = {
    manager: SERVICE + ".Manager",
    vm: SERVICE + ".VM",
    job: SERVICE + ".Job",
    disk: SERVICE + ".Disk",
    settings: SERVICE + ".Settings",
    network: SERVICE + ".Network",
};

// h("td", {class: "x", onclick: fn}, "text", node, ...): an element. Strings and numbers
// become text nodes; attributes are set with setAttribute, handlers with addEventListener.
export function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
        if (value === undefined || value === null || value === false)
            continue;
        if (key.startsWith("on") && typeof value === "function")
            node.addEventListener(key.slice(2), value);
        else if (key === "hidden" || key === "disabled" || key === "checked")
            node[key] = Boolean(value);
        else if (key === "value")
            node.value = String(value);
        else
            node.setAttribute(key, String(value));
    }
    append(node, children);
    return node;
}

function append(node, children) {
    for (const child of children) {
        if (child === undefined || child === null || child === false)
            continue;
        if (Array.isArray(child))
            append(node, child);
        else if (child instanceof Node)
            node.appendChild(child);
        else
            node.appendChild(document.createTextNode(String(child)));
    }
}

export function replace(node, ...children) {
    node.replaceChildren();
    append(node, children);
}

// Binary units: 1536 -> "1.5 KiB".
export function formatBytes(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let value = Number(bytes);
    let i = 0;
    while (value >= 1024 && i < units.length - 1) {
        value /= 1024;
        i++;
    }
    const digits = i === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
    return value.toFixed(digits) + " " + units[i];
}

export function formatMiB(mib) {
    return formatBytes(Number(mib) * 1024 * 1024);
}

// Seconds since the epoch, in the browser's locale.
export function formatTime(seconds) {
    if (!seconds)
        return "never";
    return new Date(Number(seconds) * 1000).toLocaleString();
}

export function lastSegment(path) {
    return String(path).split("/").pop();
}

// The Name of the object at `path` in a set of proxies, or the path's last segment while
// the proxy is not (or no longer) there.
export function nameOf(proxies, path) {
    const p = proxies[path];
    return p && p.valid ? p.Name : lastSegment(path);
}

// A table row for the object at `path` with one cell per key, each of class PREFIX-KEY:
// {tr, cells}. The caller appends any further cells (actions).
export function cellRow(path, prefix, keys) {
    const tr = h("tr", { "data-path": path });
    const cells = {};
    for (const key of keys)
        cells[key] = tr.appendChild(h("td", { class: prefix + key }));
    return { tr, cells };
}

// Options for an a{sv} argument: {key: ["t", 5]} -> {key: {t: "t", v: 5}}.
export function variants(options) {
    const out = {};
    for (const [key, [type, value]] of Object.entries(options))
        out[key] = { t: type, v: value };
    return out;
}

// Keeps a table body in step with a set of cockpit.dbus proxies: `update(proxy)` makes or
// refreshes the proxy's row in `rows` (object path -> {tr, ...}); the rows are kept in
// `compare` order of their proxies, a removed proxy's row goes, and `empty` shows when
// there are none. Returns the function that puts the rows in order again.
export function liveRows(proxies, body, empty, rows, update, compare) {
    function place() {
        const sorted = Array.from(rows.entries()).filter(([path]) => proxies[path])
                .sort(([a], [b]) => compare(proxies[a], proxies[b]));
        sorted.forEach(([, row], i) => {
            if (body.children[i] !== row.tr)
                body.insertBefore(row.tr, body.children[i] || null);
        });
        empty.hidden = sorted.length > 0;
    }
    const changed = (ev, proxy) => { update(proxy); place(); };
    proxies.addEventListener("added", changed);
    proxies.addEventListener("changed", changed);
    proxies.addEventListener("removed", (ev, proxy) => {
        const row = rows.get(proxy.path);
        if (row) {
            row.tr.remove();
            rows.delete(proxy.path);
        }
        place();
    });
    proxies.wait(() => {
        for (const proxy of Object.values(proxies))
            update(proxy);
        place();
    });
    return place;
}

const ACCESS_ERRORS = [
    "org.freedesktop.DBus.Error.AccessDenied",
    "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
];

// Shows a failed call: what was tried, the D-Bus error name and the service's message,
// for a refusal by polkit how to get access, and `help(error)`'s text if it gives one
// (explain.js: what stands in the way of a Busy or InvalidState call).
export function showError(what, error, help) {
    const box = document.getElementById("mv-errors");
    const name = error && error.name ? error.name
        : error && error.problem ? "(Cockpit: " + error.problem + ")" : "(no D-Bus error name)";
    const message = error && error.message ? error.message : String(error);
    const item = h("div", { class: "mv-error", role: "alert" },
                   h("button", { type: "button", class: "mv-btn", "aria-label": "Dismiss this error",
                                 onclick: () => item.remove() }, "Dismiss"),
                   h("strong", {}, what + " failed: "),
                   h("span", { class: "mv-error-name" }, name),
                   h("div", { class: "mv-error-message" }, message));
    if (ACCESS_ERRORS.includes(name)) {
        item.classList.add("mv-access-denied");
        item.appendChild(h("p", { class: "mv-error-help" },
                           "You are not allowed to do this. Cockpit cannot show a password prompt " +
                           "for this service, so polkit refuses instead of asking. To get access, " +
                           "turn on \u201cAdministrative access\u201d in Cockpit's top bar (calls " +
                           "then run as root, uid 0, which is what the service's audit log shows), " +
                           "or have an administrator add you to the group \u201cmultiverse\u201d " +
                           "with a polkit rule for org.multiverse.controller.* actions. Cockpit " +
                           "sessions count as remote for polkit, so the rule must return " +
                           "polkit.Result.YES itself (allow_any), not rely on allow_active."));
    }
    const extra = help ? help(error) : null;
    if (extra)
        item.appendChild(h("p", { class: "mv-error-help mv-error-explained" }, extra));
    box.prepend(item);
    return item;
}

// Runs a call and reports its failure (with `help` as for showError); resolves to the
// reply or to undefined.
export function attempt(what, promise, help) {
    return promise.catch(error => {
        showError(what, error, help);
        return undefined;
    });
}

// Runs a listing whose answer fills a place in the page (a table), such as the one a view
// makes by itself when it opens: a failure is said in that place, by `failed(text)`, rather
// than in an error box, since it may be no fault of the user's (a refusal by polkit, a disk
// with no filesystem yet). The text names the D-Bus error; a refusal says how to get
// access. Resolves to the reply or to undefined.
export function attemptListing(what, promise, failed) {
    return promise.catch(error => {
        const name = error && error.name ? error.name : "(no D-Bus error name)";
        if (ACCESS_ERRORS.includes(name))
            failed("You may not " + what + " (" + name + "). Administrative access, or a polkit rule for the " +
                   "group \u201cmultiverse\u201d, gives access; a refused action's message says more.");
        else
            failed("Could not " + what + ": " + name + ": " + (error && error.message ? error.message : String(error)));
        return undefined;
    });
}

// Follows the job at `path` (a cockpit.dbus proxies set of jobs): `onChange(job)` on every
// change, and the promise resolves with the job once it is no longer running.
export function whenJobEnds(jobs, path, onChange) {
    return new Promise(resolve => {
        const handler = (event, proxy) => { if (proxy.path === path) look(); };
        function look() {
            const job = jobs[path];
            if (!job || !job.valid)
                return;
            if (onChange)
                onChange(job);
            if (job.State !== "running") {
                jobs.removeEventListener("added", handler);
                jobs.removeEventListener("changed", handler);
                resolve(job);
            }
        }
        jobs.addEventListener("added", handler);
        jobs.addEventListener("changed", handler);
        look();
    });
}

// Shows a job in `box` while it runs and after: what it is, a progress bar, its state, its
// error, and Cancel while it runs. Resolves with the job once it has ended.
export function showJob(ctx, box, what, path) {
    const { client, jobs } = ctx;
    const cancel = button("Cancel", () => {
        attempt("Cancel " + what, client.call(path, IFACE.job, "Cancel", [{}], { type: "a{sv}" }), explainJob);
    }, { class: "mv-btn mv-job-cancel", "aria-label": "Cancel " + what });
    const progress = h("progress", { max: 1, value: 0, "aria-label": "Progress of " + what });
    const pct = h("span", { class: "mv-job-pct" });
    const state = h("span", { class: "mv-badge mv-job-state", "data-state": "running" }, "running");
    const error = h("div", { class: "mv-no mv-job-error" });
    replace(box, h("div", { class: "mv-job-line", "data-job": path },
                   h("span", {}, what + " (job " + lastSegment(path) + "): "), progress, pct, " ", state, " ",
                   cancel, error));
    let highest = 0;
    return whenJobEnds(jobs, path, job => {
        const done = job.State === "succeeded";
        const value = done ? 1 : job.ProgressValid ? job.Progress : 0;
        highest = Math.max(highest, value);
        progress.value = value;
        // The largest fraction shown so far, for a person and for the browser tests.
        progress.dataset.highest = String(highest);
        replace(pct, done || job.ProgressValid ? " " + Math.round(value * 100) + " %" : "");
        replace(state, job.State);
        state.dataset.state = job.State;
        replace(error, job.Error || "");
        cancel.disabled = job.State !== "running";
    });
}

// Asks in `box` (a hidden .mv-confirm element whose id is ID) before a step that loses
// data: `text`, a button `yes` (id ID-yes) that runs `action`, and `no` (id ID-no).
export function confirmIn(box, text, yes, action, no) {
    const id = box.id;
    replace(box, h("p", { id: id + "-text" }, text),
            button(yes, () => { box.hidden = true; action(); }, { id: id + "-yes", class: "mv-btn mv-danger" }),
            button(no || "Cancel", () => { box.hidden = true; }, { id: id + "-no" }));
    box.hidden = false;
    document.getElementById(id + "-yes").focus();
}

export function button(label, onclick, extra) {
    return h("button", Object.assign({ type: "button", class: "mv-btn", onclick }, extra || {}), label);
}
