"""A VM's details on the page: attach and detach a managed disk, add and remove a 9p share,
create, revert and delete snapshots; each checked with a second client (busctl GetXML) or
with qemu-img and qemu-io on the image itself."""
import os
import subprocess

from selenium.webdriver.common.by import By

from pagelib import (SVC, ROOT, ADMIN_URL, busctl, vm_path, vm_call, define, wait, shot, check, tab, row,
                     shown_state, load)

SHARES = os.environ["MV_SHARES"]
IMAGES = os.environ["MV_IMAGES"]
DISK = "pg-data.qcow2"
IMAGE = os.path.join(IMAGES, DISK)


def xml(name):
    out = busctl("call", SVC, vm_path(name), SVC + ".VM", "GetXML", "a{sv}", "1", "inactive", "b", "true")
    # busctl prints s "..." with C escapes; the parts checked below carry none but \".
    return out.replace('\\"', '"').replace("\\'", "'")


def snapshots_on_image():
    res = subprocess.run(["/usr/bin/qemu-img", "snapshot", "-U", "-l", IMAGE], capture_output=True, text=True,
                         timeout=60, check=True)
    return res.stdout


def qemu_io(command):
    return subprocess.run(["/usr/bin/qemu-io", "-f", "qcow2", "-c", command, IMAGE], capture_output=True,
                          text=True, timeout=60)


def details(d):
    return d.find_element(By.ID, "mv-vm-details")


def cell_rows(d, table_id, attr):
    return {tr.get_attribute(attr): tr for tr in d.find_elements(By.CSS_SELECTOR, "#%s tr[%s]" % (table_id, attr))}


def fill(d, element_id, text):
    field = d.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def click_in(d, table_id, attr, key, action):
    """Clicks the button `action` in the row `key` of a table the page may redraw meanwhile."""
    wait(d, "%s on %s" % (action, key), lambda: cell_rows(d, table_id, attr)[key].find_element(
        By.CSS_SELECTOR, 'button[data-action="%s"]' % action).click() or True)


def snapshot_status(d):
    return d.find_element(By.ID, "mv-snapshot-status").text


def details_checks(d):
    load(d, ADMIN_URL)
    tab(d, "vms")
    busctl("call", SVC, ROOT, SVC + ".Manager", "CreateDisk", "stsa{sv}", DISK, str(64 << 20), "qcow2", "0")
    define("det1")
    wait(d, "det1", lambda: shown_state(d, "det1") == "shutoff")

    def open_details():
        row(d, "det1").find_element(By.CSS_SELECTOR, 'button[data-action="Details"]').click()
        wait(d, "the details", lambda: details(d).is_displayed())
        assert d.find_element(By.ID, "mv-details-title").text == "Details: det1"
        assert details(d).get_attribute("data-path") == vm_path("det1")
    check(d, "Details opens the VM's disks, shares and snapshots", open_details)

    def define_with_disk():
        fill(d, "mv-define-name", "withdisk")
        d.find_element(By.CSS_SELECTOR, '#mv-define-profile option[value="interface-controller"]').click()
        wait(d, DISK + " offered", lambda: d.find_elements(By.CSS_SELECTOR, '#mv-define-disks option[value="%s"]' % DISK))
        d.find_element(By.CSS_SELECTOR, '#mv-define-disks option[value="%s"]' % DISK).click()
        d.find_element(By.ID, "mv-define").click()
        wait(d, "withdisk listed", lambda: shown_state(d, "withdisk") == "shutoff")
        text = xml("withdisk")
        assert "<source file='%s'/>" % IMAGE in text or '<source file="%s"/>' % IMAGE in text, text[:3000]
        assert "dev='vda'" in text or 'dev="vda"' in text, text[:3000]
        assert row(d, "withdisk").find_element(By.CSS_SELECTOR, ".mv-vm-profile").text == "interface-controller"
        vm_call("withdisk", "Undefine")
        wait(d, "withdisk gone", lambda: row(d, "withdisk") is None)
    check(d, "defining an interface controller with a managed disk on the page attaches it as vda (GetXML)",
          define_with_disk)

    def autostart():
        define("det2")
        wait(d, "det2 in the fallback list", lambda: d.find_elements(
            By.CSS_SELECTOR, '#mv-autostart-fallback option[value="det2"]'))
        d.find_element(By.ID, "mv-autostart-enabled").click()
        d.find_element(By.CSS_SELECTOR, '#mv-autostart-fallback option[value="det2"]').click()
        fill(d, "mv-autostart-timeout", "45")
        d.find_element(By.ID, "mv-autostart-save").click()
        prop = lambda p: busctl("get-property", SVC, vm_path("det1"), SVC + ".VM", p)
        wait(d, "Autostart and Fallback set", lambda: prop("Autostart") == "b true" and prop("Fallback") == 's "det2"')
        wait(d, "autostart yes in the list", lambda: row(d, "det1").find_element(
            By.CSS_SELECTOR, ".mv-vm-autostart").text.startswith("yes"))
        text = xml("det1")
        assert "fallback>det2<" in text and "ready-timeout-s>45<" in text, "not in the metadata: " + text[:1500]
        d.find_element(By.ID, "mv-autostart-enabled").click()
        d.find_element(By.CSS_SELECTOR, '#mv-autostart-fallback option[value=""]').click()
        d.find_element(By.ID, "mv-autostart-save").click()
        wait(d, "Autostart off, no fallback", lambda: prop("Autostart") == "b false" and prop("Fallback") == 's ""')
        vm_call("det2", "Undefine")
    check(d, "the autostart form sets the service's flag, the fallback VM and the ready timeout (properties, "
          "metadata) and clears them", autostart)

    def attach():
        fill(d, "mv-attach-disk", DISK)
        fill(d, "mv-attach-target", "vdb")
        d.find_element(By.ID, "mv-attach").click()
        wait(d, "vdb in the details", lambda: "vdb" in cell_rows(d, "mv-details-disks", "data-target"))
        tr = cell_rows(d, "mv-details-disks", "data-target")["vdb"]
        assert DISK in tr.text and "qcow2" in tr.text, tr.text
        text = xml("det1")
        assert "dev='vdb'" in text or 'dev="vdb"' in text, "no vdb in the definition: " + text[:1500]
        assert IMAGE in text, "the definition does not use " + IMAGE
    check(d, "attaching a managed disk on the page puts it in the VM's definition (GetXML)", attach)

    def share():
        fill(d, "mv-share-path", os.path.join(SHARES, "data"))
        fill(d, "mv-share-tag", "data1")
        d.find_element(By.ID, "mv-share-readonly").click()
        d.find_element(By.ID, "mv-share-add").click()
        wait(d, "the share in the details", lambda: "data1" in cell_rows(d, "mv-details-shares", "data-tag"))
        text = xml("det1")
        assert "data1" in text and os.path.join(SHARES, "data") in text, "the share is not in the definition"
        # Outside the share roots: the service's InvalidArgs names the path, nothing is added.
        fill(d, "mv-share-path", "/etc")
        fill(d, "mv-share-tag", "etc1")
        d.find_element(By.ID, "mv-share-add").click()
        wait(d, "the InvalidArgs error", lambda: "InvalidArgs" in d.find_element(By.ID, "mv-errors").text)
        assert "/etc" in d.find_element(By.ID, "mv-errors").text
        assert "etc1" not in xml("det1"), "a refused share is in the definition"
        shot(d, "vms-details")
    check(d, "a 9p share added on the page is in the definition; one outside the roots is refused", share)

    def snapshot_create():
        assert qemu_io("write -P 0x11 0 64k").returncode == 0
        fill(d, "mv-snapshot-name", "s1")
        d.find_element(By.ID, "mv-snapshot-create").click()
        wait(d, "the create job to succeed", lambda: "CreateSnapshot s1" in snapshot_status(d)
             and "succeeded" in snapshot_status(d), 60)
        wait(d, "s1 listed", lambda: "s1" in cell_rows(d, "mv-details-snapshots", "data-snapshot"))
        assert "vm-s1" in snapshots_on_image(), snapshots_on_image()
    check(d, "a snapshot created on the page is a job that ends succeeded, vm-s1 per qemu-img", snapshot_create)

    def snapshot_revert():
        assert qemu_io("write -P 0x22 0 64k").returncode == 0
        click_in(d, "mv-details-snapshots", "data-snapshot", "s1", "Revert")
        wait(d, "the confirmation", lambda: d.find_element(By.ID, "mv-snapshot-confirm").is_displayed())
        assert "lost" in d.find_element(By.ID, "mv-snapshot-confirm").text
        shot(d, "vms-details-revert-confirm")
        d.find_element(By.ID, "mv-snapshot-confirm-yes").click()
        wait(d, "the revert job to succeed", lambda: "RevertSnapshot s1" in snapshot_status(d)
             and "succeeded" in snapshot_status(d), 60)
        res = qemu_io("read -P 0x11 0 64k")
        assert res.returncode == 0 and "Pattern verification failed" not in res.stdout, res.stdout + res.stderr
    check(d, "revert asks first, then the disk holds what it held at the snapshot (qemu-io)", snapshot_revert)

    def snapshot_elsewhere():
        busctl("call", SVC, vm_path("det1"), SVC + ".VM", "CreateSnapshot", "sa{sv}", "s2", "0")
        wait(d, "s2 listed without a reload", lambda: "s2" in cell_rows(d, "mv-details-snapshots", "data-snapshot"), 60)
        click_in(d, "mv-details-snapshots", "data-snapshot", "s2", "Delete")
        wait(d, "s2 gone", lambda: "s2" not in cell_rows(d, "mv-details-snapshots", "data-snapshot"))
        image = snapshots_on_image()
        assert "vm-s2" not in image and "vm-s1" in image, image
    check(d, "another client's snapshot shows up live; Delete on the page removes it from the image", snapshot_elsewhere)

    def running():
        vm_call("det1", "Start")
        wait(d, "det1 running in the details", lambda: "running" in d.find_element(By.ID, "mv-details-state").text)
        assert not d.find_element(By.ID, "mv-share-add").is_enabled()
        assert not d.find_element(By.ID, "mv-snapshot-create").is_enabled()
        tr = cell_rows(d, "mv-details-snapshots", "data-snapshot")["s1"]
        assert not tr.find_element(By.CSS_SELECTOR, 'button[data-action="Revert"]').is_enabled()
        shot(d, "vms-details-running")
        vm_call("det1", "Destroy")
        wait(d, "det1 shut off", lambda: d.find_element(By.ID, "mv-share-add").is_enabled())
    check(d, "while the VM runs, share and snapshot controls are off and say why", running)

    def remove():
        click_in(d, "mv-details-disks", "data-target", "vdb", "Detach")
        wait(d, "vdb gone", lambda: "vdb" not in cell_rows(d, "mv-details-disks", "data-target"))
        click_in(d, "mv-details-shares", "data-tag", "data1", "RemoveShare")
        wait(d, "data1 gone", lambda: "data1" not in cell_rows(d, "mv-details-shares", "data-tag"))
        text = xml("det1")
        assert IMAGE not in text and "data1" not in text, "the definition still has the disk or the share"
    check(d, "Detach and Remove on the page take the disk and the share out of the definition", remove)

    def undefined():
        vm_call("det1", "Undefine")
        wait(d, "the details to close", lambda: not details(d).is_displayed())
    check(d, "the details close when the VM is undefined", undefined)
