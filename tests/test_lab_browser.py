"""The workbench in a real browser: `trainwall lab mobile/1 --no-browser` started as a
student starts it, driven by Playwright in Debian's chromium (.ci/run installs it with
apt-get; Playwright's own browser download is not available here).

A student changes the optimizer, locks three predictions (the instruments appear only
then), changes the optimizer again (the waterfall follows) and submits: the file holds
the plan and the predictions as typed, and `trainwall grade` grades it.
"""

from __future__ import annotations

import shutil
import tomllib

import pytest

from trainwall.challenges.grading import MissionSource, grade_file
from test_lab import running_lab
from trainwall.challenges.mission import mission

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytest.importorskip("marimo")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (.ci/run installs Debian's)")


@pytest.fixture
def server(tmp_path):
    out = tmp_path / "submission.toml"
    with running_lab(tmp_path, "--out", str(out)) as port:
        yield f"http://127.0.0.1:{port}/", out


def test_a_student_explores_locks_and_submits_in_a_browser(server):
    url, out = server
    m = mission("mobile/1")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.get_by_text("Lock your predictions").first.wait_for(timeout=60000)
        optimizer = page.get_by_label("optimizer", exact=True)
        optimizer.select_option("sgd")
        waterfall = page.get_by_role("heading", name="Training Memory Waterfall")
        assert waterfall.count() == 0                            # hidden until every prediction is locked
        numbers = page.locator("input[aria-roledescription='Number field']")   # the Lock questions, in order
        assert numbers.count() == len(m.lock)
        for i, q in enumerate(m.lock):
            assert q.text.split("?")[0][:40] in numbers.nth(i).get_attribute("aria-label")   # labelled by its question
            numbers.nth(i).fill(str(i + 1))
            page.get_by_role("button", name="Lock").nth(i).click()
        waterfall.wait_for(timeout=60000)
        assert page.get_by_text("you said 1;").count() == 1      # the first Lock's key is revealed
        optimizer.select_option("momentum")
        page.get_by_role("button", name="Submit").click()
        page.get_by_text("Wrote").first.wait_for(timeout=60000)
        browser.close()
    submitted = tomllib.loads(out.read_text())
    assert submitted["configuration"]["training"]["optimizer"] == "momentum"
    assert submitted["predictions"] == {q.id: float(i + 1) for i, q in enumerate(m.lock)}
    assert grade_file(out, MissionSource.open(None)).gradable
