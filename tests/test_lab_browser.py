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
        assert page.get_by_placeholder("a number").count() == len(m.lock)
        for i, q in enumerate(m.rendered().lock):
            page.get_by_label(q.text, exact=True).fill(str(i + 1))      # each field labelled by its question
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


#: One mission per part: every control the app draws for them.
A11Y_MISSIONS = ("mobile/1", "edge/2", "cloud/3")

#: Each form control inside the app's widgets (marimo draws them in shadow roots; the page's
#: own chrome is marimo's): its tag, accessible name (aria-label, aria-labelledby, its
#: label's text, or a button's text) and tab index.
CONTROLS_JS = """els => els.filter(e => e.getRootNode() !== document && e.offsetParent !== null).map(e => {
  const root = e.getRootNode();
  const by = (e.getAttribute('aria-labelledby') || '').split(' ').filter(Boolean)
      .map(id => (root.getElementById(id) || {}).innerText || '').join(' ');
  const labels = e.labels ? Array.from(e.labels).map(l => l.innerText).join(' ') : '';
  const name = e.getAttribute('aria-label') || by || labels || (e.tagName === 'BUTTON' ? e.innerText : '');
  return [e.tagName, name.trim(), e.tabIndex];
})"""


@pytest.mark.parametrize("mission_id", A11Y_MISSIONS)
def test_every_control_is_labelled_and_reachable_from_the_keyboard(tmp_path, mission_id):
    with running_lab(tmp_path, mission_id=mission_id) as port, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text("Lock your predictions").first.wait_for(timeout=60000)
        page.wait_for_timeout(500)
        controls = page.locator("select, input, textarea, button, [role=slider], [role=switch]").evaluate_all(
            CONTROLS_JS)
        first = page.get_by_placeholder("a number").first
        first.focus()
        page.keyboard.type("1")
        page.keyboard.press("Tab")                                # to its Lock button
        page.keyboard.press("Enter")                              # a Lock from the keyboard
        page.get_by_text("you said 1;").first.wait_for(timeout=60000)
        browser.close()
    assert len(controls) >= len(mission(mission_id).lock) + 3
    for tag, name, tab in controls:
        assert name and "<" not in name, f"a {tag} without a readable name: {name!r}"
        assert tab >= 0, f"{tag} {name!r} is out of the tab order"


def test_a_configuration_opens_in_a_sandbox_and_saves_a_configuration(tmp_path):
    """trainwall lab CONFIG: the picker offers each part's levers; switching to part 2 shows
    the gauge; Submit saves a configuration evaluate reads, never a submission."""
    from pathlib import Path

    from trainwall.core.config import load_config

    config = str(Path(__file__).parent.parent / "examples" / "edge.toml")
    out = tmp_path / "configuration.toml"
    with running_lab(tmp_path, "--out", str(out), mission_id=config) as port, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("heading", name="Training Memory Waterfall").wait_for(timeout=60000)   # no Locks to wait for
        page.get_by_label("levers", exact=True).select_option(label=f"{config} with part 2's levers")
        page.get_by_role("heading", name="Pipeline Utilization Gauge").wait_for(timeout=60000)
        page.get_by_role("button", name="Submit").click()
        page.get_by_text("nothing graded").first.wait_for(timeout=60000)
        browser.close()
    assert load_config(out).data.workers == load_config(config).data.workers
    assert "mission" not in out.read_text()
