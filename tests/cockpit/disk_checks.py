"""The Disks view: create, resize (grow, and shrink after a confirmation), back up and
restore from the page, files inside the image (upload, listing, download) and Inspect;
each checked with qemu-img, sha256sum, ReadFile or the download itself. The refused
user's part is in refused_disk_checks; snapshots, policies, clones and Cancel are in
disk_policy_checks and disk_copy_checks, which go on with the same disk."""
import hashlib
import json
import os
import subprocess
import tempfile
import time

from selenium.webdriver.common.by import By

from pagelib import ADMIN_URL, USER_URL, BUS, OUT, SVC, ROOT, busctl, wait, shot, check, tab, load

IMAGES = os.environ["MV_IMAGES"]
BACKUPS = os.environ["MV_BACKUPS"]
MVCTL = os.environ["MV_MVCTL"]
DISK = "web.qcow2"
IMAGE = os.path.join(IMAGES, DISK)
RESTORED = "web-restored.qcow2"
MARKUP = "<img id=mvfile src=x onerror=alert(2)>"  # no '/': it is one file name


def mvctl(*args):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=BUS)
    res = subprocess.run([MVCTL, *args], env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise AssertionError("mvctl %s: %s" % (" ".join(args), (res.stderr or res.stdout).strip()))
    return res.stdout


def image_info(path=IMAGE):
    res = subprocess.run(["/usr/bin/qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(res.stdout)


def disk_row(d, name):
    for tr in d.find_elements(By.CSS_SELECTOR, "#mv-disk-body > tr[data-path]"):
        if tr.find_element(By.CSS_SELECTOR, ".mv-disk-name").text == name:
            return tr
    return None


def fill(d, element_id, text):
    field = d.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def size(d, prefix, number, unit):
    fill(d, prefix, str(number))
    d.find_element(By.CSS_SELECTOR, '#%s-unit option[value="%s"]' % (prefix, unit)).click()


def job_state(d, box="mv-disk-job"):
    return d.find_element(By.CSS_SELECTOR, "#%s .mv-job-state" % box).get_attribute("data-state")


def shown_job(d, box="mv-disk-job"):
    """The job the box shows (its object path), or None."""
    lines = d.find_elements(By.CSS_SELECTOR, "#%s .mv-job-line" % box)
    return lines[0].get_attribute("data-job") if lines else None


def wait_job(d, what, before, box="mv-disk-job", timeout=300):
    """Waits for a job other than `before` to show in the box and end; it must succeed."""
    wait(d, what + " to start", lambda: shown_job(d, box) not in (None, before), 60)
    wait(d, what + " to end", lambda: job_state(d, box) != "running", timeout)
    assert job_state(d, box) == "succeeded", d.find_element(By.ID, box).text


def confirm(d, *expected):
    wait(d, "the confirmation", lambda: d.find_element(By.ID, "mv-disk-confirm").is_displayed())
    text = d.find_element(By.ID, "mv-disk-confirm").text
    for part in expected:
        assert part in text, "the confirmation does not say %r: %s" % (part, text)
    return text


def open_details(d, name):
    """Opens disk `name`'s details from the Disks view."""
    tab(d, "disks")
    wait(d, name + " listed", lambda: disk_row(d, name) is not None)
    disk_row(d, name).find_element(By.CSS_SELECTOR, 'button[data-action="Details"]').click()
    wait(d, name + "'s details", lambda: d.find_element(By.ID, "mv-disk-details-title").text == "Disk " + name)


def snapshots_in(path=IMAGE):
    """The internal snapshots' names per qemu-img info."""
    return [s["name"] for s in image_info(path).get("snapshots", [])]


def dismiss_errors(d):
    for b in d.find_elements(By.CSS_SELECTOR, "#mv-errors .mv-error > button"):
        b.click()


def file_rows(d):
    return {tr.get_attribute("data-name"): tr for tr in d.find_elements(By.CSS_SELECTOR, "#mv-files-body tr[data-name]")}


def upload(d, local, guest_path):
    d.find_element(By.ID, "mv-files-upload").send_keys(local)
    fill(d, "mv-files-upload-path", guest_path)
    d.find_element(By.ID, "mv-files-send").click()


def guestfish(*command):
    """libguestfs' own shell on the image, read-only (TCG: no usable KVM here)."""
    env = dict(os.environ, LIBGUESTFS_BACKEND_SETTINGS="force_tcg")
    res = subprocess.run(["/usr/bin/guestfish", "--ro", "--format=qcow2", "-a", IMAGE, "run", ":", *command],
                         env=env, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise AssertionError("guestfish %s: %s" % (" ".join(command), res.stderr.strip()))
    return res.stdout.strip()


def read_file(guest_path):
    return mvctl("disk", "cat", DISK, guest_path)


def disk_checks(d):
    load(d, ADMIN_URL)
    downloads = tempfile.mkdtemp(prefix="mvcockpit-dl.", dir=OUT)
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    tab(d, "disks")

    def create():
        fill(d, "mv-create-disk-name", DISK)
        size(d, "mv-create-disk-size", 256, "MiB")
        d.find_element(By.ID, "mv-create-disk").click()
        wait(d, DISK + " listed", lambda: disk_row(d, DISK) is not None)
        info = image_info()
        assert info["format"] == "qcow2" and info["virtual-size"] == 256 << 20, info
        assert disk_row(d, DISK).find_element(By.CSS_SELECTOR, ".mv-disk-virtual").text == "256 MiB"
        shot(d, "disks")
    check(d, "a disk created on the page is a 256 MiB qcow2 per qemu-img info, shown as 256 MiB", create)

    def format_disk():
        open_details(d, DISK)
        d.find_element(By.CSS_SELECTOR, '#mv-format-fstype option[value="ext4"]').click()
        fill(d, "mv-format-label", "webdata")
        d.find_element(By.ID, "mv-format").click()
        confirm(d, "ext4", "erased", "no snapshots")
        shot(d, "disks-format-confirm")
        before = shown_job(d)
        d.find_element(By.ID, "mv-disk-confirm-yes").click()
        wait_job(d, "Format", before)
        # One appliance for both questions (each launch is ~20 s under TCG).
        seen = guestfish("list-filesystems", ":", "vfs-label", "/dev/sda1").splitlines()
        assert seen == ["/dev/sda1: ext4", "webdata"], seen
    check(d, "Format from the page after its confirmation: ext4 labelled webdata on /dev/sda1 per guestfish",
          format_disk)

    local = os.path.join(downloads, "upload-hello.txt")
    with open(local, "w") as f:
        f.write("hello from the page\n")

    def files():
        disk_row(d, DISK).find_element(By.CSS_SELECTOR, 'button[data-action="Details"]').click()
        wait(d, "the disk's details", lambda: d.find_element(By.ID, "mv-disk-details").is_displayed())
        wait(d, "the root listing", lambda: "lost+found" in file_rows(d), 120)
        upload(d, local, "/hello.txt")
        wait(d, "hello.txt listed", lambda: "hello.txt" in file_rows(d), 120)
        assert read_file("/hello.txt") == "hello from the page\n"
        upload(d, local, "/" + MARKUP)
        wait(d, "the markup-named file listed", lambda: MARKUP in file_rows(d), 120)
        assert not d.find_elements(By.ID, "mvfile"), "a guest file name was parsed as markup"
        file_rows(d)["hello.txt"].find_element(By.CSS_SELECTOR, 'button[data-action="Download"]').click()
        target = os.path.join(downloads, "hello.txt")
        wait(d, "the download", lambda: os.path.exists(target) and open(target).read() == "hello from the page\n", 60)
        assert d.current_url.endswith("index.html") or "multiverse" in d.current_url, "the page navigated away"
        shot(d, "disks-files")
    check(d, "upload into the image (read back with ReadFile), listing, a markup name as text, download as a file",
          files)

    def inspect():
        before = shown_job(d, "mv-inspect")
        d.find_element(By.ID, "mv-inspect-run").click()
        wait_job(d, "Inspect", before, "mv-inspect", timeout=300)
        # The findings come from GetInspection: the formatted ext4 on /dev/sda1, no system.
        wait(d, "the findings", lambda: "/dev/sda1 (ext4)" in d.find_element(By.ID, "mv-inspect-results").text, 60)
        assert "none recognised" in d.find_element(By.CSS_SELECTOR, '#mv-inspect-results dd[data-finding="os"]').text
        # The bars come from GetFilesystemUsage; the property every client sees stays empty,
        # and the job's Result holds when, not what.
        wait(d, "usage bars", lambda: disk_row(d, DISK).find_elements(By.CSS_SELECTOR, ".mv-disk-usage meter"), 30)
        path = busctl("call", SVC, ROOT, SVC + ".Manager", "GetDiskByName", "sa{sv}", DISK, "0").split('"')[1]
        assert busctl("get-property", SVC, path, SVC + ".Disk", "FilesystemUsage") == "a(sttt) 0"
        job = d.find_element(By.CSS_SELECTOR, "#mv-inspect [data-job]").get_attribute("data-job")
        result = busctl("get-property", SVC, job, SVC + ".Job", "Result")
        assert result.startswith('a{sv} 1 "inspected" t '), result
    check(d, "Inspect on the page is a job; its findings (GetInspection) and the usage bar (GetFilesystemUsage) "
          "are shown, while the property and the job's Result carry none", inspect)

    def backup_restore():
        before = shown_job(d)
        d.find_element(By.ID, "mv-backup").click()
        wait_job(d, "Backup", before)
        progress = d.find_element(By.CSS_SELECTOR, "#mv-disk-job progress")
        assert progress.get_attribute("data-highest") == "1", progress.get_attribute("data-highest")
        wait(d, "the backup listed", lambda: d.find_elements(By.CSS_SELECTOR, "#mv-disk-backups tr[data-backup]"))
        tr = d.find_element(By.CSS_SELECTOR, "#mv-disk-backups tr[data-backup]")
        backup_id = tr.get_attribute("data-backup")
        # A point of the chain: its digest is the SHA-256 of its block index.
        with open(os.path.join(BACKUPS, backup_id + ".index"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        assert digest in tr.text, "the page's digest is not sha256sum's of the index %s: %s" % (digest, tr.text)
        assert "full" in tr.text, tr.text
        wait(d, "tracking on", lambda: "on since" in d.find_element(By.ID, "mv-disk-tracking").text, 30)
        changed = os.path.join(downloads, "changed.txt")
        with open(changed, "w") as f:
            f.write("changed after the backup\n")
        upload(d, changed, "/hello.txt")
        wait(d, "the change", lambda: read_file("/hello.txt") == "changed after the backup\n", 120)
        tr.find_element(By.CSS_SELECTOR, 'button[data-action="Restore"]').click()
        confirm(d, backup_id, "verified first", "lost")
        before = shown_job(d)
        d.find_element(By.ID, "mv-disk-confirm-yes").click()
        wait_job(d, "Restore", before)
        assert read_file("/hello.txt") == "hello from the page\n", read_file("/hello.txt")
        # Restored over, the disk tracks nothing since the point: the page says the next is full.
        wait(d, "tracking broken", lambda: "broken, the next point is full" in d.find_element(By.ID, "mv-disk-tracking").text, 30)
        shot(d, "disks-restored")
        # The same point as a new disk.
        d.find_element(By.ID, "mv-restore-name").send_keys(RESTORED)
        before = shown_job(d)
        d.find_element(By.CSS_SELECTOR, '#mv-disk-backups tr[data-backup="%s"] button[data-action="RestoreAsNew"]' % backup_id).click()
        wait_job(d, "Restore as a new disk", before)
        wait(d, RESTORED + " listed", lambda: disk_row(d, RESTORED) is not None, 30)
        assert image_info(os.path.join(IMAGES, RESTORED))["format"] == "qcow2"
        assert mvctl("disk", "cat", RESTORED, "/hello.txt") == "hello from the page\n"
        mvctl("disk", "delete", RESTORED)
    check(d, "Backup from the page (a full point, its digest as sha256sum's of its index, tracking on), then Restore "
          "brings back what was there (ReadFile; tracking broken), and As new disk makes a disk holding it",
          backup_restore)

    def resize():
        size(d, "mv-resize-size", 512, "MiB")
        before = shown_job(d)
        d.find_element(By.ID, "mv-resize").click()
        wait_job(d, "Resize (grow)", before)
        assert image_info()["virtual-size"] == 512 << 20, image_info()
        wait(d, "512 MiB shown", lambda: disk_row(d, DISK).find_element(By.CSS_SELECTOR, ".mv-disk-virtual").text == "512 MiB")
        # Inspect's sample was of the 256 MiB filesystem: dropped, not shown stale.
        wait(d, "the old usage sample gone", lambda: disk_row(d, DISK).find_element(
            By.CSS_SELECTOR, ".mv-disk-usage").text == "not sampled", 30)
        assert not disk_row(d, DISK).find_elements(By.CSS_SELECTOR, ".mv-disk-usage meter")
        # A new sample, so that the shrink's confirmation can state the data in use.
        before = shown_job(d, "mv-inspect")
        d.find_element(By.ID, "mv-inspect-run").click()
        wait_job(d, "Inspect", before, "mv-inspect", timeout=300)
        wait(d, "usage bars again", lambda: disk_row(d, DISK).find_elements(By.CSS_SELECTOR, ".mv-disk-usage meter"), 30)
        size(d, "mv-resize-size", 300, "MiB")
        d.find_element(By.ID, "mv-resize").click()
        confirm(d, "from 512 MiB to 300 MiB", "hold", "shrunk first")
        shot(d, "disks-shrink-confirm")
        assert image_info()["virtual-size"] == 512 << 20, "the image changed before the confirmation"
        before = shown_job(d)
        d.find_element(By.ID, "mv-disk-confirm-yes").click()
        wait_job(d, "Resize (shrink)", before)
        assert image_info()["virtual-size"] == 300 << 20, image_info()
        assert read_file("/hello.txt") == "hello from the page\n"
    check(d, "grow to 512 MiB (the stale usage sample dropped), then shrink to 300 MiB after a confirmation naming "
          "sizes and data (qemu-img info)",
          resize)


def refused_disk_checks(d):
    load(d, USER_URL)
    tab(d, "disks")

    def refusal(what):
        return [e for e in d.find_elements(By.CSS_SELECTOR, "#mv-errors .mv-access-denied")
                if (what + " (disk " + DISK + ") failed") in e.text]

    def refused():
        wait(d, DISK + " listed", lambda: disk_row(d, DISK) is not None)
        before = (image_info()["virtual-size"], sorted(os.listdir(BACKUPS)))
        disk_row(d, DISK).find_element(By.CSS_SELECTOR, 'button[data-action="Details"]').click()
        wait(d, "the disk's details", lambda: d.find_element(By.ID, "mv-disk-details").is_displayed())
        # The backups are open to read (ListBackups needs no action); the file listing the
        # page makes by itself on opening (disk.inspect) says in place that it was refused,
        # naming the error, instead of raising an error box.
        wait(d, "the backups listed", lambda: d.find_elements(By.CSS_SELECTOR, "#mv-disk-backups tr[data-backup]"), 60)
        wait(d, "the refusal in the file table", lambda: any(
            "You may not list / inside the image (org.freedesktop.DBus.Error." in e.text
            for e in d.find_elements(By.CSS_SELECTOR, "#mv-files-body .mv-refused")), 60)
        # Inspect's findings and the usage sample (disk.inspect) are refused in place too:
        # the row says the usage is hidden, no bar.
        wait(d, "the findings refused", lambda: "You may not read the last inspection" in
             d.find_element(By.ID, "mv-inspect-results").text, 60)
        # The shrink above dropped the disk's sample: an administrator's Inspect takes a new
        # one, and the page, told by UsageSampled, asks for it and is refused.
        assert disk_row(d, DISK).find_element(By.CSS_SELECTOR, ".mv-disk-usage").text == "not sampled"
        mvctl("disk", "inspect", DISK)
        wait(d, "the usage hidden", lambda: disk_row(d, DISK).find_elements(By.CSS_SELECTOR, ".mv-disk-usage .mv-refused"), 60)
        assert not disk_row(d, DISK).find_elements(By.CSS_SELECTOR, ".mv-disk-usage meter")
        assert not d.find_elements(By.CSS_SELECTOR, "#mv-errors .mv-error"), \
            [e.text for e in d.find_elements(By.CSS_SELECTOR, "#mv-errors .mv-error")]
        shot(d, "user-disk-details-refused-listings")
        d.find_element(By.ID, "mv-backup").click()
        wait(d, "the refusal of Backup", lambda: refusal("Backup"), 60)
        dismiss_errors(d)
        size(d, "mv-resize-size", 1, "GiB")
        d.find_element(By.ID, "mv-resize").click()
        wait(d, "the refusal of Resize", lambda: refusal("Resize"), 60)
        time.sleep(1)
        assert (image_info()["virtual-size"], sorted(os.listdir(BACKUPS))) == before, "the disk or the backups changed"
        shot(d, "user-disks-refused")
    check(d, "the unprivileged user sees the backups, the file listing, the findings and the usage refused in place "
          "(no error box); "
          "Backup and Resize are refused and change nothing on disk", refused)
