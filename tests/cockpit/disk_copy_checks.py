"""Clones and Cancel from the page: a linked clone (qemu-img's backing file), the Busy
answer it causes explained with the overlay named, Cancel of a running full clone in the
disk's details and of a running backup in the Jobs view, each leaving no file. The
daemon copies at copy_rate_mib_s = 32 here (tests/cockpit/run), so a copy of 256 MiB of
random bytes takes about 8 s. Goes on with disk_checks' web.qcow2."""
import os
import subprocess
import time

from selenium.webdriver.common.by import By

from pagelib import SVC, ROOT, ADMIN_URL, busctl, wait, shot, check, tab, load
from disk_checks import (DISK, IMAGE, IMAGES, BACKUPS, image_info, disk_row, fill, job_state, shown_job, wait_job,
                         open_details, snapshots_in, dismiss_errors)

OVERLAY = "overlay.qcow2"
NOISE = "noise.raw"


def disk_path(name):
    return busctl("call", SVC, ROOT, SVC + ".Manager", "GetDiskByName", "sa{sv}", name, "0").split('"')[1]


def leftovers(name):
    """Files in the image directory that belong to disk `name`, finished or temporary."""
    return [f for f in os.listdir(IMAGES) if f == name or f.startswith("." + name + ".")]


def disk_copy_checks(d):
    load(d, ADMIN_URL)

    def linked_clone_and_busy():
        open_details(d, DISK)
        fill(d, "mv-clone-name", OVERLAY)
        d.find_element(By.ID, "mv-clone-linked").click()
        before = shown_job(d)
        d.find_element(By.ID, "mv-clone").click()
        wait_job(d, "Clone (linked)", before)
        info = image_info(os.path.join(IMAGES, OVERLAY))
        assert info.get("full-backing-filename") == IMAGE, info
        wait(d, "the overlay listed on its backing disk",
             lambda: OVERLAY in disk_row(d, DISK).find_element(By.CSS_SELECTOR, ".mv-disk-overlays").text, 30)
        assert disk_row(d, OVERLAY).find_element(By.CSS_SELECTOR, ".mv-disk-backing").text == DISK
        dismiss_errors(d)
        fill(d, "mv-disk-snapshot-name", "refused")
        d.find_element(By.ID, "mv-disk-snapshot-create").click()
        help_text = wait(d, "the Busy answer explained", lambda: [
            e.text for e in d.find_elements(By.CSS_SELECTOR, "#mv-errors .mv-error")
            if "org.multiverse.Controller.Error.Busy" in e.text and e.find_elements(By.CSS_SELECTOR, ".mv-error-explained")])[0]
        assert "Disk " + OVERLAY + " is built on " + DISK in help_text, help_text
        assert "refused" not in snapshots_in(), snapshots_in()
        shot(d, "disks-busy-explained")
        dismiss_errors(d)
        busctl("call", SVC, disk_path(OVERLAY), SVC + ".Disk", "Delete", "a{sv}", "0")
        wait(d, "the overlay gone", lambda: disk_row(d, OVERLAY) is None, 30)
    check(d, "a linked clone from the page has the disk as backing file (qemu-img); the Busy snapshot it causes is "
          "explained naming the overlay, and nothing is made", linked_clone_and_busy)

    def cancel_clone():
        busctl("call", SVC, ROOT, SVC + ".Manager", "CreateDisk", "stsa{sv}", NOISE, str(256 << 20), "raw", "0")
        subprocess.run(["dd", "if=/dev/urandom", "of=" + os.path.join(IMAGES, NOISE), "bs=4M", "count=64",
                        "conv=notrunc", "status=none"], check=True, timeout=300)
        open_details(d, NOISE)
        # The linked box ticked for the other disk is not carried over.
        assert not d.find_element(By.ID, "mv-clone-linked").is_selected(), "linked still ticked from another disk"
        assert d.find_element(By.ID, "mv-clone-name").get_attribute("value") == ""
        fill(d, "mv-clone-name", "noise-copy.raw")
        d.find_element(By.ID, "mv-clone").click()
        bar = lambda: d.find_element(By.CSS_SELECTOR, "#mv-disk-job progress")
        wait(d, "the progress bar to move", lambda: 0 < float(bar().get_attribute("value")) < 1, 60)
        assert leftovers("noise-copy.raw"), "no temporary image while the clone runs"
        shot(d, "disks-clone-running")
        d.find_element(By.CSS_SELECTOR, "#mv-disk-job .mv-job-cancel").click()
        wait(d, "cancelled", lambda: job_state(d) == "cancelled", 60)
        time.sleep(1)
        assert not leftovers("noise-copy.raw"), "left in the image directory: %s" % leftovers("noise-copy.raw")
        assert disk_row(d, "noise-copy.raw") is None
        # noise.raw holds no filesystem: the listing made on opening says so in its table.
        wait(d, "the failed listing in the file table", lambda: any(
            "Could not list / inside the image: org.multiverse.Controller.Error.Guestfs" in e.text
            and "no filesystem" in e.text for e in d.find_elements(By.CSS_SELECTOR, "#mv-files-body .mv-refused")), 120)
        boxes = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#mv-errors .mv-error") if "inside the image" in e.text]
        assert not boxes, boxes
    check(d, "a running full clone's progress bar moves; Cancel on the page ends it cancelled, leaving no image; "
          "the disk's failed file listing (no filesystem) is said in its table",
          cancel_clone)

    def cancel_in_jobs_view():
        before = sorted(os.listdir(BACKUPS))
        # Started by another client: the Jobs view shows it live and cancels it.
        job = busctl("call", SVC, disk_path(NOISE), SVC + ".Disk", "Backup", "a{sv}", "0").split('"')[1]
        tab(d, "jobs")
        row = lambda: d.find_element(By.CSS_SELECTOR, '#mv-job-body tr[data-path="%s"]' % job)
        wait(d, "the backup's row with progress", lambda: float(row().find_element(By.TAG_NAME, "progress")
                                                                 .get_attribute("value")) > 0, 60)
        assert row().find_element(By.CSS_SELECTOR, ".mv-job-operation").text == "Backup"
        assert row().find_element(By.CSS_SELECTOR, ".mv-job-target").text == "disk " + NOISE
        shot(d, "jobs-running")
        row().find_element(By.CSS_SELECTOR, 'button[data-action="Cancel"]').click()
        wait(d, "cancelled in the Jobs view", lambda: row().find_element(By.CSS_SELECTOR, ".mv-job-state").text
             == "cancelled", 60)
        assert "cancelled" in busctl("get-property", SVC, job, SVC + ".Job", "State")
        time.sleep(1)
        assert sorted(os.listdir(BACKUPS)) == before, "files left in the backup directory: %s" % os.listdir(BACKUPS)
    check(d, "a backup started with busctl shows in the Jobs view with its progress; Cancel there ends it, no file left",
          cancel_in_jobs_view)
