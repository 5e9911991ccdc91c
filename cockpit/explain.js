// Plain words under a Busy or InvalidState answer: for a disk, what to do about each lease
// the service says is held on it (Disk.HeldBy); for a VM, its state and its jobs.
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

// What to do about one lease on a disk (its HeldBy entry: kind and holder's path). Who
// holds the disk is the service's answer; only the advice is the page's.
function explainLease(ctx, disk, kind, holder) {
    const job = valid(ctx.jobs, holder);
    if (job)
        return "Job " + String(holder).split("/").pop() + " (" + job.Operation + ") holds disk " + disk + " (" + kind +
               "): wait for it to end, or cancel it (Jobs view).";
    const vm = valid(ctx.vms, holder);
    if (vm)
        return "VM " + vm.Name + " (" + vm.State + ") has disk " + disk + " open: shut it down in the VMs view first " +
               "(only growing works while it runs).";
    const other = valid(ctx.disks, holder);
    if (other)
        return "Disk " + other.Name + " is built on " + disk + " (a qcow2 overlay) and needs it unchanged: delete the " +
               "overlay first, or make a full clone of it (which flattens it) and delete the overlay.";
    return "Another call holds disk " + disk + " (" + kind + ") for a moment: try again.";
}

export function explainDisk(ctx, path) {
    return error => {
        const d = valid(ctx.disks, path);
        if (!d || !error || error.name !== ERROR + "Busy")
            return null;
        const parts = (d.HeldBy || []).map(([kind, holder]) => explainLease(ctx, d.Name, kind, holder));
        if (!parts.length)
            parts.push("The service holds nothing on disk " + d.Name + " now: what was in the way has gone, or is " +
                       "outside the service (the message above names it, e.g. a VM started with virsh): try again " +
                       "once it is gone.");
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
