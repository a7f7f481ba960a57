"""Start the workbench: ``marimo run`` on the app shipped in the package, on 127.0.0.1.

marimo is an optional extra (``pip install 'trainwall[lab]'``); without it ``trainwall
lab`` says how to get it. The port is a free one unless ``--port`` names one; marimo
prints the URL (with its access token) and opens a browser unless ``--no-browser``.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the system has just handed out as free on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def command(mission: str | None, out: str, port: int, browser: bool, keys: str | None = None) -> list[str]:
    """The ``marimo run`` command line for the app (the app reads ``--mission``, ``--out`` and,
    in instructor mode, ``--keys``)."""
    line = [sys.executable, "-m", "marimo", "run", str(APP), "--host", "127.0.0.1", "--port", str(port),
            "--no-sandbox", "--no-check"]
    if not browser:
        line.append("--headless")
    line += ["--", "--out", out] + (["--mission", mission] if mission else []) + (["--keys", keys] if keys else [])
    return line


def serve(mission: str | None, out: str | None, port: int | None = None, browser: bool = True,
          keys: str | None = None) -> int:
    """Check the inputs, then become the server (``exec``: stopping this process stops marimo;
    a child would outlive a terminated parent). Returns only where ``exec`` is replaced (tests).
    ``keys``: instructor mode's answers (what ``trainwall grade --mission`` takes). ``out``:
    where Submit writes (None: ``submission.toml``, or for a configuration's sandbox
    ``configuration.toml``)."""
    import importlib.util
    import os

    from trainwall.challenges.mission import resolve
    from trainwall.core.errors import InputError
    from trainwall.core.outputs import check_target
    from trainwall.lab.sandbox import default_out, is_configuration, references

    if importlib.util.find_spec("marimo") is None:
        raise InputError("", "trainwall lab", "the workbench needs marimo: pip install 'trainwall[lab]' "
                         "(from a checkout: pip install '.[lab]')")
    configuration = is_configuration(mission)
    if configuration:
        references(mission)         # an accelerator no track runs on, or no part that opens, fails here
        if keys:
            raise InputError("--keys", keys, f"{mission} is a configuration, explored in a sandbox: nothing to "
                             "grade against (--keys goes with a mission or a handout)")
    elif mission:
        resolve(mission)            # an unknown mission or a broken file fails here, not in the browser
    out = out or default_out(configuration)
    if keys:
        from trainwall.challenges.grading import MissionSource

        MissionSource.open(keys)    # a missing or broken key folder fails here too
    inputs = [p for p in (mission, keys) if p and Path(p).exists()]
    check_target(out, "--out", folder=False, files=inputs)
    line = command(mission, out, port or free_port(), browser, keys)
    sys.stdout.flush()
    os.execv(line[0], line)
    return 0
