"""``trainwall autograder gradescope MISSION --out DIR``: a Gradescope autograder bundle.

Gradescope (gradescope-autograders.readthedocs.io, "Autograder Specifications") runs
``setup.sh`` once when the image is built and ``run_autograder`` per submission, with
the student's files in ``/autograder/submission/``, the bundle in
``/autograder/source/``, and the results expected in
``/autograder/results/results.json``. The bundle holds:

* ``setup.sh``: installs Python 3.11+ and, in ``/autograder/venv``, trainwall
  (``--install``: a pip requirement, by default this version of trainwall; a wheel
  file given there is copied into the bundle and installed from it);
* ``run_autograder``: grades the first ``.toml``/``.json``/``.yaml``/``.yml`` file of
  the submission folder with ``--format gradescope`` and always leaves a results file;
* ``keys/``: the mission (or every variant) with its certified optimum, so no
  submission pays for a solve and grading cannot drift if trainwall's missions change.

``run_autograder`` reads ``AUTOGRADER_ROOT`` (default ``/autograder``) and
``TRAINWALL_PYTHON`` (default the venv's python) so it can be tried on a copy of the tree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
apt-get update
apt-get install -y python3 python3-venv python3-pip
PY=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    apt-get install -y python3.11 python3.11-venv   # Ubuntu 22.04 ships 3.10; trainwall needs 3.11+
    PY=python3.11
fi
"$PY" -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --upgrade pip
/autograder/venv/bin/python -m pip install {requirement}
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this per submission. It always leaves results/results.json.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{TRAINWALL_PYTHON:-$ROOT/venv/bin/python}}"
shopt -s nullglob
files=("$ROOT"/submission/*.toml "$ROOT"/submission/*.json "$ROOT"/submission/*.yaml "$ROOT"/submission/*.yml)
submission="${{files[0]:-$ROOT/submission/submission.toml}}"   # none: the grader reports a missing file
mkdir -p "$ROOT/results"
"$PYTHON" -m trainwall.cli grade "$submission" --mission "$ROOT/source/keys" \\
    --format gradescope --output "$ROOT/results/results.json"
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    printf '{{"score": 0.0, "output": "The autograder could not start trainwall (exit %s). Tell your instructor.", "tests": []}}\\n' \\
        "$status" > "$ROOT/results/results.json"
fi
exit 0
"""


def write_bundle(reference: str, out: str | Path, requirement: str) -> Path:
    """The bundle for a mission id / file, or a ``generate`` output folder (its variants)."""
    from trainwall.challenges.answers import optimum
    from trainwall.challenges.mission import resolve

    out = Path(out)
    keys = out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    source = Path(reference)
    if source.is_dir():
        from trainwall.challenges.answers import load_keys

        load_keys(source)   # refuse a folder that holds no valid keys
        folder = source / "keys" if (source / "keys").is_dir() else source
        for path in sorted(folder.glob("*.json")):
            shutil.copyfile(path, keys / path.name)
    else:
        mission = resolve(reference)
        key = {"mission": mission.model_dump(mode="json", exclude_none=True),
               "optimum": optimum(mission).to_dict()}
        name = mission.reference.replace("/", "-").replace("@", "-")
        (keys / f"{name}.json").write_text(json.dumps(key, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    wheel = Path(requirement)
    if wheel.suffix == ".whl" and wheel.is_file():      # ship the wheel: no package index needed
        shutil.copyfile(wheel, out / wheel.name)
        requirement = f"/autograder/source/{wheel.name}"
    for name, text in (("setup.sh", SETUP.format(requirement=_quote(requirement))), ("run_autograder", RUN.format())):
        path = out / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)
    return out


def _quote(requirement: str) -> str:
    import shlex

    return shlex.quote(requirement)
