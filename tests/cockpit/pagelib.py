"""Helpers shared by the Cockpit page's browser checks (tests/cockpit/run sets MV_*)."""
import os
import subprocess
import sys
import time
import traceback

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BUS = os.environ["MV_BUS"]
OUT = os.environ["MV_OUT"]
HOSTROOT = os.environ["MV_HOSTROOT"]
HOSTILE = os.environ["MV_HOSTILE"]
ADMIN_URL = os.environ["MV_ADMIN_URL"]
USER_URL = os.environ["MV_USER_URL"]
SVC = "org.multiverse.Controller"
ROOT = "/org/multiverse/Controller"
failures = 0


def busctl(*args, check=True):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=BUS)
    res = subprocess.run(["busctl", "--system", *args], env=env, capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError("busctl %s: %s" % (" ".join(args), res.stderr.strip()))
    return res.stdout.strip()


def vm_path(name):
    return busctl("call", SVC, ROOT, SVC + ".Manager", "GetVMByName", "sa{sv}", name, "0").split('"')[1]


def vm_call(name, method):
    busctl("call", SVC, vm_path(name), SVC + ".VM", method, "a{sv}", "0")


def vm_state(name):
    return busctl("get-property", SVC, vm_path(name), SVC + ".VM", "State").split('"')[1]


def define(name, profile="app", autostart=False):
    if autostart:
        busctl("call", SVC, ROOT, SVC + ".Manager", "DefineVM", "ssa{sv}", name, profile, "1", "autostart", "b", "true")
    else:
        busctl("call", SVC, ROOT, SVC + ".Manager", "DefineVM", "ssa{sv}", name, profile, "0")


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--disable-gpu", "--window-size=1500,1100", "--lang=en-GB"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait(driver, what, predicate, timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the element may not exist yet
            last = e
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s%s" % (what, " (%s)" % last if last else ""))


def shot(driver, name):
    driver.save_screenshot(os.path.join(OUT, name + ".png"))


def check(driver, name, fn):
    """Runs one check: prints ok/FAIL, and on failure a screenshot and the traceback."""
    global failures
    start = time.time()
    try:
        fn()
        print("ok: %s (%.0f s)" % (name, time.time() - start), flush=True)
    except Exception as e:
        failures += 1
        print("FAIL: %s: %s (%.0f s)" % (name, str(e).splitlines()[0] if str(e) else type(e).__name__, time.time() - start),
              flush=True)
        traceback.print_exc(file=sys.stderr)
        try:
            shot(driver, "FAIL-" + "".join(c if c.isalnum() else "-" for c in name)[:60])
        except Exception:
            pass


def tab(driver, view):
    driver.find_element(By.ID, "tab-" + view).click()
    wait(driver, view + " view", lambda: driver.find_element(By.ID, "view-" + view).is_displayed())


def row(driver, name):
    for tr in driver.find_elements(By.CSS_SELECTOR, "#mv-vm-body > tr[data-path]"):
        if tr.find_element(By.CSS_SELECTOR, ".mv-vm-name").text == name:
            return tr
    return None


def shown_state(driver, name):
    tr = row(driver, name)
    return tr.find_element(By.CSS_SELECTOR, ".mv-state").text if tr else None


def load(driver, url):
    driver.get(url)
    wait(driver, "the page to load", lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))


def setting_events(driver):
    return driver.find_element(By.ID, "mv-setting-events").text
