"""A disk's snapshots (create, revert after a confirmation, delete), its versioning and
AutoGrow forms, a full Clone, and UsageHigh with the AutoGrow it starts: from the page,
checked with qemu-img, ReadFile and the service's properties. Goes on with disk_checks'
web.qcow2 (ext4, /hello.txt)."""
import os
import tempfile

from selenium.webdriver.common.by import By

from pagelib import SVC, ADMIN_URL, OUT, busctl, wait, shot, check, load
from disk_checks import (DISK, IMAGES, mvctl, image_info, disk_row, fill, size, shown_job, wait_job, confirm,
                         open_details, snapshots_in, upload, read_file)

GROWN = "grown.qcow2"


def disk_property(name, prop):
    path = busctl("call", SVC, "/org/multiverse/Controller", SVC + ".Manager", "GetDiskByName", "sa{sv}",
                  name, "0").split('"')[1]
    return busctl("get-property", SVC, path, SVC + ".Disk", prop)


def snapshot_row(d, name):
    rows = d.find_elements(By.CSS_SELECTOR, '#mv-disk-snapshots tr[data-snapshot="%s"]' % name)
    return rows[0] if rows else None


def disk_policy_checks(d):
    load(d, ADMIN_URL)
    scratch = tempfile.mkdtemp(prefix="mvcockpit-policy.", dir=OUT)
    open_details(d, DISK)

    def snapshots():
        fill(d, "mv-disk-snapshot-name", "before-change")
        d.find_element(By.ID, "mv-disk-snapshot-create").click()
        wait(d, "the snapshot listed", lambda: snapshot_row(d, "before-change"), 60)
        assert "before-change" in snapshots_in(), snapshots_in()
        assert "this disk's" in snapshot_row(d, "before-change").text, snapshot_row(d, "before-change").text
        changed = os.path.join(scratch, "changed.txt")
        with open(changed, "w") as f:
            f.write("written after the snapshot\n")
        upload(d, changed, "/hello.txt")
        wait(d, "the change", lambda: read_file("/hello.txt") == "written after the snapshot\n", 120)
        snapshot_row(d, "before-change").find_element(By.CSS_SELECTOR, 'button[data-action="Revert"]').click()
        confirm(d, "before-change", "lost")
        shot(d, "disks-snapshot-revert-confirm")
        assert read_file("/hello.txt") == "written after the snapshot\n", "reverted before the confirmation"
        d.find_element(By.ID, "mv-disk-confirm-yes").click()
        wait(d, "the revert", lambda: read_file("/hello.txt") == "hello from the page\n", 120)
        snapshot_row(d, "before-change").find_element(By.CSS_SELECTOR, 'button[data-action="Delete"]').click()
        wait(d, "the snapshot gone from the page", lambda: snapshot_row(d, "before-change") is None, 60)
        assert "before-change" not in snapshots_in(), snapshots_in()
    check(d, "a disk snapshot made on the page (qemu-img), reverted after a confirmation (ReadFile), deleted",
          snapshots)

    def versioning():
        d.find_element(By.ID, "mv-versioning-enabled").click()
        fill(d, "mv-versioning-interval", "900")
        fill(d, "mv-versioning-keep", "3")
        d.find_element(By.ID, "mv-versioning-save").click()
        wait(d, "the policy in the service",
             lambda: all(p in disk_property(DISK, "Versioning") for p in
                         ('"enabled" b true', '"interval_s" u 900', '"keep" u 3')), 30)
        # Off again: an automatic snapshot would make the other checks' disk Busy.
        d.find_element(By.ID, "mv-versioning-enabled").click()
        d.find_element(By.ID, "mv-versioning-save").click()
        wait(d, "versioning off", lambda: '"enabled" b false' in disk_property(DISK, "Versioning"), 30)
    check(d, "the versioning form sets the disk's Versioning (busctl get-property), and turns it off again",
          versioning)

    def clone_and_autogrow():
        fill(d, "mv-clone-name", GROWN)
        before = shown_job(d)
        d.find_element(By.ID, "mv-clone").click()
        wait_job(d, "Clone", before)
        info = image_info(os.path.join(IMAGES, GROWN))
        assert info["virtual-size"] == 300 << 20 and "backing-filename" not in info, info
        assert mvctl("disk", "cat", GROWN, "/hello.txt") == "hello from the page\n"
        # 32 MiB of data: the filesystem (about 290 MiB) is then over 10 % full.
        noise = os.path.join(scratch, "noise.bin")
        with open(noise, "wb") as f:
            f.write(os.urandom(16 << 20))
        for n in (1, 2):
            mvctl("disk", "put", GROWN, "/noise%d.bin" % n, noise)
        open_details(d, GROWN)
        d.find_element(By.ID, "mv-autogrow-enabled").click()
        fill(d, "mv-autogrow-threshold", "5")
        size(d, "mv-autogrow-step", 64, "MiB")
        size(d, "mv-autogrow-max", 1, "GiB")
        d.find_element(By.ID, "mv-autogrow-save").click()
        wait(d, "the policy in the service",
             lambda: all(p in disk_property(GROWN, "AutoGrow") for p in
                         ('"enabled" b true', '"threshold" d 0.05', '"step" t %d' % (64 << 20),
                          '"max" t %d' % (1 << 30))), 30)
        # Drawn again from the property, each size in the unit that holds it whole.
        shown = lambda i: (d.find_element(By.ID, i).get_attribute("value"), d.find_element(By.ID, i + "-unit")
                           .get_attribute("value"))
        wait(d, "64 MiB and 1 GiB in the form", lambda: shown("mv-autogrow-step") == ("64", "MiB")
             and shown("mv-autogrow-max") == ("1", "GiB"), 30)
        before = shown_job(d, "mv-inspect")
        assert GROWN not in d.find_element(By.ID, "mv-disk-events").text, "UsageHigh before any sample"
        d.find_element(By.ID, "mv-inspect-run").click()
        wait_job(d, "Inspect", before, "mv-inspect", timeout=300)
        wait(d, "UsageHigh shown", lambda: "UsageHigh: disk " + GROWN in d.find_element(By.ID, "mv-disk-events").text, 60)
        wait(d, "AutoGrow to 364 MiB", lambda: image_info(os.path.join(IMAGES, GROWN))["virtual-size"] == 364 << 20, 300)
        wait(d, "364 MiB shown", lambda: disk_row(d, GROWN).find_element(By.CSS_SELECTOR, ".mv-disk-virtual").text
             == "364 MiB", 60)
        assert mvctl("disk", "cat", GROWN, "/hello.txt") == "hello from the page\n"
        shot(d, "disks-autogrow")
    check(d, "a full Clone from the page (qemu-img), AutoGrow set on the form, Inspect's sample sends UsageHigh "
          "(shown) and AutoGrow grows it by the step (qemu-img info)", clone_and_autogrow)
