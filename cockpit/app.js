// The Multiverse page: one D-Bus client for org.multiverse.Controller, the proxies every
// view shares (kept live by the service's ObjectManager and PropertiesChanged), and the tabs.

/* global cockpit */

import { SERVICE, ROOT, IFACE, h, replace } from "./util.js";
import { overviewView } from "./overview.js";
import { vmsView } from "./vms.js";
import { disksView } from "./disks.js";
import { jobsView } from "./jobs.js";
import { usageSource } from "./usage.js";

const client = cockpit.dbus(SERVICE, { bus: "system", superuser: "try" });

const ctx = {
    client,
    manager: client.proxy(IFACE.manager, ROOT),
    settings: client.proxy(IFACE.settings, ROOT + "/settings"),
    vms: client.proxies(IFACE.vm, ROOT),
    jobs: client.proxies(IFACE.job, ROOT),
    disks: client.proxies(IFACE.disk, ROOT),
    networks: client.proxies(IFACE.network, ROOT),
    usage: usageSource(client),
};

const views = {
    overview: overviewView(document.getElementById("view-overview"), ctx),
    vms: vmsView(document.getElementById("view-vms"), ctx),
    disks: disksView(document.getElementById("view-disks"), ctx),
    jobs: jobsView(document.getElementById("view-jobs"), ctx),
};

function select(name) {
    if (!views[name])
        name = "overview";
    for (const tab of document.querySelectorAll(".mv-tabs button")) {
        const on = tab.dataset.view === name;
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
    }
    for (const key of Object.keys(views))
        document.getElementById("view-" + key).hidden = key !== name;
}

const tabs = Array.from(document.querySelectorAll(".mv-tabs button"));
for (const tab of tabs) {
    tab.addEventListener("click", () => {
        cockpit.location.go([tab.dataset.view]);
    });
    // Arrow keys move between the tabs (the tab list is one stop for Tab).
    tab.addEventListener("keydown", event => {
        const i = tabs.indexOf(tab);
        let next = null;
        if (event.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
        if (event.key === "ArrowLeft") next = tabs[(i + tabs.length - 1) % tabs.length];
        if (next) {
            event.preventDefault();
            next.focus();
            next.click();
        }
    });
}
cockpit.addEventListener("locationchanged", () => select(cockpit.location.path[0]));
select(cockpit.location.path[0]);

// Who the calls run as: with Administrative access the bridge is root and polkit asks
// nothing (the service's audit log records uid 0, not the person).
const access = document.getElementById("mv-access");
function showAccess(current) {
    if (current === "root")
        replace(access, "Administrative access is on: this page calls the service as root (uid 0); " +
                "polkit asks nothing and the service's audit log shows uid 0.");
    else
        replace(access, "Administrative access is off: this page calls the service as you; " +
                "polkit decides what you may change.");
}
try {
    const superuser = cockpit.dbus(null, { bus: "internal" }).proxy("cockpit.Superuser", "/superuser");
    superuser.addEventListener("changed", () => showAccess(superuser.Current));
    superuser.wait(() => showAccess(superuser.valid ? superuser.Current : "none"));
} catch (e) {
    showAccess("none");
}

// The service's objects belong to one daemon instance: Cockpit's cache keeps the old ones
// when the daemon stops (no InterfacesRemoved comes), so the page says so while the name
// has no owner and starts over (a reload) when a new instance owns it.
let owner; // undefined until the bridge reports the name's owner
client.addEventListener("owner", (event, current) => {
    if (owner !== undefined && current && current !== owner) {
        window.location.reload();
        return;
    }
    if (!current && owner !== undefined && !document.getElementById("mv-service-gone")) {
        document.body.dataset.service = "gone";
        document.querySelector("main").inert = true; // no calls to an instance that is gone
        document.getElementById("mv-errors").prepend(
            h("div", { class: "mv-error", role: "alert", id: "mv-service-gone" },
              h("strong", {}, SERVICE + " is not running. "),
              "What the page shows is from before it stopped; the page starts over when the " +
              "service is back (a restart, an upgrade or D-Bus activation)."));
    }
    owner = current || null;
});

client.addEventListener("close", (event, options) => {
    const problem = options && options.problem ? options.problem : "closed";
    document.getElementById("mv-errors").prepend(
        h("div", { class: "mv-error", role: "alert" },
          h("strong", {}, "The connection to " + SERVICE + " ended: "),
          h("span", { class: "mv-error-name" }, problem)));
});

document.body.dataset.ready = "true";
