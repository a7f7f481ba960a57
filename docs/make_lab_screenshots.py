"""Regenerates the workbench's screenshots in docs/gallery/ (lab-<track>-<part>.png), one
mission per part: ``trainwall lab MISSION --no-browser`` is started as a student starts it
and driven in headless Chromium (Debian's ``chromium``; Playwright from the test extras).

Each screenshot shows the page after every Lock question is answered with 1 (so the
instruments are open; the keys the page then reveals are the shipped mission's, which
``trainwall show`` and ``trainwall solve`` give anyway, never a student variant's).

    python docs/make_lab_screenshots.py [--chromium PATH]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

GALLERY = Path(__file__).resolve().parent / "gallery"
MISSIONS = ("mobile/1", "edge/2", "cloud/3")


@contextmanager
def lab_server(mission_id: str):
    """``trainwall lab`` on a free port, in a scratch folder; yields its URL, then stops it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen([sys.executable, "-m", "trainwall.cli", "lab", mission_id, "--no-browser",
                                    "--port", str(port)], cwd=folder, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)
        try:
            end = time.monotonic() + 60
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if process.poll() is not None or time.monotonic() > end:
                    raise SystemExit(f"trainwall lab {mission_id} did not start")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/"
        finally:
            process.terminate()
            process.wait(timeout=30)


def screenshot(page, mission_id: str, out: Path) -> None:
    """Lock every prediction (1), wait for the walls table, and shoot the whole page."""
    page.get_by_text("Lock your predictions").first.wait_for(timeout=60000)
    numbers = page.get_by_placeholder("a number")
    for i in range(numbers.count()):
        numbers.nth(i).fill("1")
        page.get_by_role("button", name="Lock").nth(i).click()
    page.get_by_role("heading", name="Walls").wait_for(timeout=60000)
    page.wait_for_timeout(500)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out), full_page=True)
    _trim(out)
    print(f"{mission_id}: {out}")


def _trim(path: Path, margin: int = 24) -> None:
    """Cut the blank page below the app (the viewport is tall so the whole app renders)."""
    from PIL import Image, ImageChops

    image = Image.open(path)
    box = ImageChops.difference(image.convert("RGB"), Image.new("RGB", image.size, "white")).getbbox()
    if box:
        image = image.crop((0, 0, image.width, min(image.height, box[3] + margin)))
        image.quantize(256).save(path, optimize=True)   # a UI of flat colours: a palette keeps it small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args()
    if not args.chromium:
        raise SystemExit("no chromium: apt-get install chromium, or give --chromium PATH")
    from playwright.sync_api import sync_playwright

    GALLERY.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for mission_id in MISSIONS:
            with lab_server(mission_id) as url:
                page = browser.new_page(viewport={"width": 1100, "height": 4400})
                page.goto(url)
                screenshot(page, mission_id, GALLERY / f"lab-{mission_id.replace('/', '-')}.png")
                page.close()
        browser.close()


if __name__ == "__main__":
    main()
