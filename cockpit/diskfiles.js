// The files inside a disk image: a directory listing (ListDirectory), downloads (ReadFile,
// handed to the browser as an application/octet-stream attachment, never shown inline),
// uploads (WriteFile) and Inspect's findings. Names and findings come from the guest:
// text only.

import { IFACE, h, replace, formatBytes, formatTime, attempt, attemptListing, button, showJob } from "./util.js";
import { explainDisk } from "./explain.js";

const MAX_UPLOAD = 16 * 1024 * 1024; // WriteFile's limit

function base64ToBytes(text) {
    const raw = atob(text || "");
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++)
        bytes[i] = raw.charCodeAt(i);
    return bytes;
}

function bytesToBase64(bytes) {
    let raw = "";
    for (let i = 0; i < bytes.length; i += 0x8000)
        raw += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(raw);
}

function join(dir, name) {
    return (dir.endsWith("/") ? dir : dir + "/") + name;
}

export function diskFiles(ctx) {
    const { client } = ctx;
    let path = null; // the disk
    let dir = "/";

    const where = h("input", { type: "text", id: "mv-files-path", value: "/", required: true });
    const body = h("tbody", { id: "mv-files-body" });
    const upload = h("input", { type: "file", id: "mv-files-upload" });
    const uploadName = h("input", { type: "text", id: "mv-files-upload-path", placeholder: "in the directory shown" });
    const inspectBox = h("div", { id: "mv-inspect", "aria-live": "polite" });
    const findings = h("dl", { class: "mv-facts", id: "mv-inspect-results" });

    const node = h("div", { id: "mv-files" },
        h("form", { class: "mv-form", id: "mv-files-form", "aria-label": "Browse the files of the disk", onsubmit: go },
          h("label", { for: "mv-files-path" }, "Directory inside the image", where),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-files-list" }, "List"),
          button("Up", () => list(dir.replace(/\/[^/]+\/?$/, "") || "/"), { id: "mv-files-up" })),
        h("table", { "aria-label": "Files in the directory" },
          h("thead", {}, h("tr", {}, ["Name", "Type", "Size", "Modified", "Mode", ""].map(t => h("th", { scope: "col" }, t)))),
          body),
        h("form", { class: "mv-form", id: "mv-files-upload-form", "aria-label": "Upload a file into the image",
                    onsubmit: send },
          h("label", { for: "mv-files-upload" }, "File to upload (at most 16 MiB)", upload),
          h("label", { for: "mv-files-upload-path" }, "Path inside the image", uploadName),
          h("button", { type: "submit", class: "mv-btn mv-primary", id: "mv-files-send" }, "Upload")),
        h("p", { class: "mv-note" }, "Uploading replaces the file atomically, keeping its owner and mode; it is " +
          "refused while a running VM uses the disk."),
        h("h3", {}, "Inspection"),
        button("Inspect the image", inspect, { id: "mv-inspect-run", class: "mv-btn" }),
        inspectBox, findings);

    function call(method, args, type, what) {
        return attempt(what, client.call(path, IFACE.disk, method, args, { type }), explainDisk(ctx, path));
    }

    function show(diskPath) {
        path = diskPath;
        replace(body);
        replace(inspectBox);
        replace(findings);
        if (path) {
            list("/");
            loadFindings();
        }
    }

    function go(event) {
        event.preventDefault();
        list(where.value);
    }

    function list(directory) {
        const shown = path;
        // Opening a disk lists "/" by itself: a failure shows in the table, not as an error.
        const request = client.call(path, IFACE.disk, "ListDirectory", [directory, {}], { type: "sa{sv}" });
        const failed = text => {
            if (path === shown)
                replace(body, h("tr", {}, h("td", { colspan: 6, class: "mv-muted mv-refused" }, text)));
        };
        attemptListing("list " + directory + " inside the image", request, failed).then(reply => {
            if (!reply || path !== shown)
                return;
            dir = directory;
            where.value = directory;
            replace(body, reply[0].map(([name, type, size, mode, mtime, target]) => {
                const full = join(directory, name);
                const shownName = type === "directory"
                    ? button(name, () => list(full), { class: "mv-link", "aria-label": "Open directory " + name })
                    : name;
                return h("tr", { "data-name": name, "data-type": type },
                         h("td", { class: "mv-file-name" }, shownName, target ? " \u2192 " + target : ""),
                         h("td", {}, type), h("td", {}, type === "file" ? formatBytes(size) : ""),
                         h("td", {}, formatTime(mtime)), h("td", {}, (Number(mode) & 0o7777).toString(8).padStart(4, "0")),
                         h("td", { class: "mv-actions" },
                           type === "file" || type === "symlink"
                               ? button("Download", () => download(full, name),
                                        { "data-action": "Download", "aria-label": "Download " + name })
                               : null));
            }));
            if (!reply[0].length)
                body.appendChild(h("tr", {}, h("td", { colspan: 6, class: "mv-muted" }, "Empty directory.")));
        });
    }

    function download(full, name) {
        call("ReadFile", [full, {}], "sa{sv}", "ReadFile " + full).then(reply => {
            if (!reply)
                return;
            // An attachment: the browser saves it and never renders what the guest wrote.
            const blob = new Blob([base64ToBytes(reply[0])], { type: "application/octet-stream" });
            const url = URL.createObjectURL(blob);
            const link = h("a", { href: url, download: name, hidden: true });
            document.body.appendChild(link);
            link.click();
            link.remove();
            setTimeout(() => URL.revokeObjectURL(url), 60000);
        });
    }

    function send(event) {
        event.preventDefault();
        const file = upload.files && upload.files[0];
        if (!file)
            return;
        if (file.size > MAX_UPLOAD) {
            attempt("Upload " + file.name, Promise.reject(new Error(file.name + " is " + formatBytes(file.size) +
                                                                     "; WriteFile takes at most 16 MiB")));
            return;
        }
        const target = uploadName.value || join(dir, file.name);
        file.arrayBuffer().then(buffer => {
            call("WriteFile", [target, bytesToBase64(new Uint8Array(buffer)), {}], "saya{sv}", "WriteFile " + target)
                .then(reply => {
                    if (reply) {
                        uploadName.value = "";
                        list(dir);
                    }
                });
        });
    }

    // Inspect's findings are the guest's: the job's Result only says when it ended, and
    // GetInspection (disk.inspect) gives what it found. Loaded when the disk opens too.
    function inspect() {
        call("Inspect", [{}], "a{sv}", "Inspect").then(reply => {
            if (!reply)
                return;
            showJob(ctx, inspectBox, "Inspect", reply[0]).then(job => {
                if (job.State === "succeeded")
                    loadFindings();
            });
        });
    }

    function loadFindings() {
        const shown = path;
        const failed = text => { if (path === shown) replace(findings, h("div", { class: "mv-muted mv-refused" }, text)); };
        attemptListing("read the last inspection", client.call(shown, IFACE.disk, "GetInspection", [{}], { type: "a{sv}" }), failed)
            .then(reply => {
                if (reply && path === shown)
                    renderFindings(reply[0]);
            });
    }

    function renderFindings(found) {
        const v = key => found[key] ? found[key].v : undefined;
        if (v("inspected") === undefined) {
            replace(findings, h("div", { class: "mv-muted", id: "mv-inspect-none" }, "Not inspected yet (or formatted since)."));
            return;
        }
        const os = v("os_type") ? v("product_name") + " (" + [v("os_type"), v("distro"), "version " + v("version")].join(", ") + ")"
            : "none recognised";
        const fact = (term, value, key) => [h("dt", {}, term), h("dd", { "data-finding": key }, value)];
        replace(findings,
                fact("Operating system", os, "os"),
                v("os_type") ? fact("Hostname", v("hostname"), "hostname") : [],
                fact("Filesystems", (v("filesystems") || []).map(([device, type]) => device + " (" + type + ")").join(", ") || "none",
                     "filesystems"),
                fact("Inspected", formatTime(v("inspected")), "inspected"));
    }

    return { node, show };
}
