// Plain words under a Busy or InvalidState answer, naming what the page knows is in the
// way: the running VMs on a disk, the disks built on it, the job holding it, a VM's state.
// The service's own message stays above the help; these only add what to do about it.
// Each explainX(ctx, path) returns a function of the D-Bus error giving the help text, or
// null when there is nothing to add. (No imports: util.js imports this file.)

const ERROR = "org.multiverse.Controller.Error.";

function valid(proxies, path) {
    const p = proxies[path];
    return p && p.valid ? p : null;
}

function runningJobs(ctx, path) {
    return Object.values(ctx.jobs).filter(j => j.valid && j.State === "running" && j.Target === path)
            .map(j => "job " + String(j.path).split("/").pop() + " (" + j.Operation + ")");
}

export function explainDisk(ctx, path) {
    return error => {
        const d = valid(ctx.disks, path);
        if (!d || !error || error.name !== ERROR + "Busy")
            return null;
        const parts = [];
        const users = (d.AttachedTo || []).map(p => valid(ctx.vms, p)).filter(v => v && v.State !== "shutoff");
        if (users.length)
            parts.push("Disk " + d.Name + " is in use by " + users.map(v => "VM " + v.Name + " (" + v.State + ")")
                    .join(", ") + ": shut it down in the VMs view first (only growing works while it runs).");
        const overlays = (d.Overlays || []).map(p => valid(ctx.disks, p)).filter(Boolean).map(o => o.Name);
        if (overlays.length)
            parts.push("Disk" + (overlays.length > 1 ? "s " : " ") + overlays.join(", ") + (overlays.length > 1 ? " are" : " is") +
                       " built on " + d.Name + " (a qcow2 overlay) and needs it unchanged: delete the overlay first, " +
                       "or make a full clone of it (which flattens it) and delete the overlay.");
        const jobs = runningJobs(ctx, path);
        if (jobs.length)
            parts.push(jobs.join(", ") + " holds disk " + d.Name + ": wait for it to end, or cancel it (Jobs view).");
        if (!parts.length)
            parts.push("Something else holds disk " + d.Name + " at the moment (a job that has just ended, or a " +
                       "VM started outside the service): try again, or look at the Jobs and VMs views.");
        return parts.join(" ");
    };
}

export function explainVM(ctx, path) {
    return error => {
        const v = valid(ctx.vms, path);
        if (!v || !error)
            return null;
        if (error.name === ERROR + "InvalidState")
            return "VM " + v.Name + " is " + v.State + " now. Snapshots, shares and Undefine need it shut off; " +
                "Shutdown, Reboot and Suspend need it running; Resume needs it paused.";
        if (error.name === ERROR + "Busy") {
            const jobs = runningJobs(ctx, path);
            return jobs.length ? jobs.join(", ") + " is working on VM " + v.Name + ": wait for it, or cancel it (Jobs view)."
                : "Something else is using VM " + v.Name + " or one of its disks (see the Disks view).";
        }
        return null;
    };
}

export function explainJob(error) {
    if (!error || error.name !== ERROR + "InvalidState")
        return null;
    return /commit point/.test(error.message || "")
        ? "The job has already put its result in place (for a disk: the new image replaced the old one), so " +
          "stopping now would leave it half done; it finishes on its own."
        : "The job has already ended; there is nothing left to cancel.";
}
