"""The web dashboard in a real headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium) against the real scheduler, agents and emulated miners of `ray_system`: the page
signs in from the URL fragment, shows every site live, the tx-1 cap and meter figures move
after a grid cap cut is posted, and the cut appears with its response steps and whether it was
met; a tenant's token shows that tenant's jobs only; the page runs under its own strict
Content-Security-Policy without a violation. A screenshot is saved as a test artifact."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from scheduler.api.v1 import types_pb2
from scheduler.client import spec
from tests.integration.conftest import wait_until
from tests.integration.helpers import cap_cut

pytestmark = pytest.mark.integration
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1700",
    "--force-device-scale-factor=1",
)
LEAD_S = 4.0  # the cut is posted this far ahead: more than the scheduler plans ahead (2 s ramp + 2 s)
CUT_S = 20.0
CUT_W = 40_000.0  # from 60 kW: met by curtailing mining alone
PAGE_WAIT_S = 30


@pytest.fixture
def browser(tmp_path):
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")), options=options)
    driver.set_page_load_timeout(PAGE_WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def artifacts_dir(tmp_path: Path) -> Path:
    where = Path(os.environ.get("POWERPLANE_TEST_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def wait_dom(driver, condition, what: str, timeout_s: float = PAGE_WAIT_S):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition(d))
    except Exception as err:
        raise AssertionError(f"timed out waiting for {what}; page text:\n{driver.find_element('tag name', 'body').text[:3000]}") from err


def css(driver, selector: str):
    return driver.find_elements("css selector", selector)


def figure(driver, site: str, field: str) -> float | None:
    """The watts a site card shows for `field` (its data-value), None until it shows one."""
    found = css(driver, f'[data-site="{site}"] [data-field="{field}"]')
    value = found[0].get_attribute("data-value") if found else None
    return float(value) if value else None


def csp_violations(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"]


def test_the_dashboard_shows_sites_live_and_follows_a_cap_cut(ray_system, browser, tmp_path):
    ops, acme, cluster = ray_system.ops, ray_system.acme, ray_system.cluster
    wait_until(lambda: (p := ops.site("tx-1").site.power).mining_w > 20_000 and p.cap_w == 60_000, 60, "mining to fill tx-1's cap")
    job = acme.submit(spec("python -c 'import time; time.sleep(600)'", gpus=2, allowed_regions=["tx"], name="dash-train"), f"dash-{uuid.uuid4().hex[:8]}").job
    event_id = f"dash-cut-{uuid.uuid4().hex[:8]}"
    start = None
    try:
        ray_system.wait_state(acme, job.job_id, types_pb2.JOB_STATE_RUNNING)
        base = f"http://127.0.0.1:{cluster.dashboard_port}/"
        browser.get(f"{base}#token={cluster.operator_token}")

        # Signed in from the fragment (then dropped from the address bar), live, every site shown.
        wait_dom(browser, lambda d: css(d, '#live[data-state="live"]'), "the live indicator")
        assert "token" not in browser.current_url
        wait_dom(browser, lambda d: {"us-1", "eu-1", "tx-1"} <= {e.get_attribute("data-site") for e in css(d, "[data-site]")}, "the three site cards")
        assert "operator ops" in browser.find_element("id", "viewer").text
        wait_dom(browser, lambda d: figure(d, "tx-1", "cap_w") == 60_000 and (figure(d, "tx-1", "mining_w") or 0) > 0, "tx-1's cap and mining")
        measured_before = figure(browser, "tx-1", "measured_w")
        assert css(browser, '[data-site="tx-1"] svg.series polygon.mining') and css(browser, '[data-site="tx-1"] tr[data-fleet="s21"]')
        assert css(browser, '[data-site="us-1"].unmanaged')  # no power management there: no chart
        row = wait_dom(browser, lambda d: css(d, f'#jobs tr[data-job="{job.job_id}"][data-state="running"]'), "acme's job running")[0]
        assert "acme" in row.text and "dash-train" in row.text

        # A cap cut: the figures follow it, as the stream pushes them (no reload).
        start = time.time() + LEAD_S
        ops.post_grid_event(cap_cut(event_id, CUT_W, start, start + CUT_S))
        event_row = f'#grid-events tr[data-event="{event_id}"]'
        wait_dom(browser, lambda d: css(d, event_row), "the cut in the grid events table")
        wait_dom(browser, lambda d: figure(d, "tx-1", "cap_w") == CUT_W, "tx-1's cap figure to drop to the cut", timeout_s=LEAD_S + 15)
        wait_dom(
            browser,
            lambda d: (m := figure(d, "tx-1", "measured_w")) is not None and m <= CUT_W and m != measured_before,
            "tx-1's meter figure to come under the cut",
            timeout_s=20,
        )
        met = wait_dom(browser, lambda d: css(d, f'{event_row}[data-state="active"][data-met="yes"]'), "the cut active and met", timeout_s=15)[0]
        steps = [li.text for li in met.find_elements("css selector", '[data-field="response"] li')]
        assert steps and any("curtail" in step for step in steps), steps
        assert "cap limit" in met.text and "40.0 kW" in met.text
        shot = artifacts_dir(tmp_path) / "dashboard.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"dashboard screenshot: {shot}")
        if os.environ.get("POWERPLANE_DASHBOARD_SCREENSHOT"):  # to refresh docs/img/dashboard.png by hand
            shutil.copy(shot, os.environ["POWERPLANE_DASHBOARD_SCREENSHOT"])
        assert csp_violations(browser) == []

        # A tenant's token: its own jobs, no sites, no grid events.
        browser.get("about:blank")
        browser.get(f"{base}#token={cluster.tenant_token('globex')}")
        wait_dom(browser, lambda d: "tenant globex" in d.find_element("id", "viewer").text and css(d, '#live[data-state="live"]'), "globex's view")
        assert not css(browser, f'#jobs tr[data-job="{job.job_id}"]') and not browser.find_element("id", "sites-section").is_displayed()
        assert not browser.find_element("id", "grid-section").is_displayed()

        # The cut ends: the cap figure goes back up.
        browser.get(f"{base}#token={cluster.operator_token}")
        wait_dom(browser, lambda d: figure(d, "tx-1", "cap_w") == 60_000, "tx-1's cap back after the cut", timeout_s=max(5.0, start + CUT_S - time.time()) + 15)
    finally:
        acme.cancel(job.job_id)
        ray_system.wait_state(acme, job.job_id, types_pb2.JOB_STATE_CANCELLED)
        if start is not None:  # leave tx-1 to the next test uncut
            wait_until(lambda: time.time() > start + CUT_S, CUT_S + LEAD_S + 5, "the cut to end")
