"""``trainwall autograder gradescope MISSION --out DIR``: a Gradescope autograder bundle.

Gradescope (gradescope-autograders.readthedocs.io, "Autograder Specifications") runs
``setup.sh`` once when the image is built and ``run_autograder`` per submission, with
the student's files in ``/autograder/submission/``, the bundle in
``/autograder/source/``, and the results expected in
``/autograder/results/results.json``. The bundle holds:

* ``setup.sh``: installs Python 3.11+ and, in ``/autograder/venv``, trainwall
  (``--install``: a pip requirement, by default this version of trainwall; a wheel
  file given there is copied into the bundle and installed from it);
* ``run_autograder``: grades the first regular file of the submission folder whose
  suffix is ``.toml``/``.json``/``.yaml``/``.yml`` in any case (never a folder, never a
  link) with ``--format gradescope``, and always leaves ``results/results.json`` as a
  file (one that says what went wrong when there is nothing to grade);
* ``keys/``: the mission (or every variant) with its certified optimum, so no
  submission pays for a solve and grading cannot drift if trainwall's missions change.

``run_autograder`` reads ``AUTOGRADER_ROOT`` (default ``/autograder``) and
``TRAINWALL_PYTHON`` (default the venv's python) so it can be tried on a copy of the tree.
"""

from __future__ import annotations

import json
import os
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

RUN = r"""#!/usr/bin/env bash
# Gradescope runs this per submission. It always leaves results/results.json, a file.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${TRAINWALL_PYTHON:-$ROOT/venv/bin/python}"
RESULTS="$ROOT/results/results.json"

fallback() {   # a results file saying what went wrong ($1 is our text, never the student's)
    printf '{"score": 0.0, "output": "%s", "output_format": "text", "visibility": "visible", %s}\n' \
        "$1" '"stdout_visibility": "hidden", "tests": []' > "$RESULTS.part" && mv -f "$RESULTS.part" "$RESULTS"
}

# The first regular file with a submission suffix, in any case (ANSWER.JSON): not a folder
# (answer.toml/), not a link (it could point at the answer keys or anywhere else).
shopt -s nullglob nocaseglob
submission=""
for candidate in "$ROOT"/submission/*.toml "$ROOT"/submission/*.json "$ROOT"/submission/*.yaml \
                 "$ROOT"/submission/*.yml; do
    if [ -f "$candidate" ] && [ ! -L "$candidate" ]; then
        submission="$candidate"
        break
    fi
done
shopt -u nocaseglob
mkdir -p "$ROOT/results"
if [ -d "$RESULTS" ] || [ -L "$RESULTS" ]; then
    rm -rf "$RESULTS"
fi
if [ -z "$submission" ]; then
    fallback "No submission file found: upload one .toml, .json, .yaml or .yml file (a file, not a folder)."
    exit 0
fi
"$PYTHON" -m trainwall.cli grade "$submission" --mission "$ROOT/source/keys" \
    --format gradescope --output "$RESULTS"
status=$?
if [ ! -f "$RESULTS" ] || [ -L "$RESULTS" ] || [ ! -s "$RESULTS" ]; then
    rm -rf "$RESULTS"
    fallback "The autograder could not start trainwall (exit $status). Tell your instructor."
fi
exit 0
"""


def check_out(reference: str, out: str | Path) -> Path:
    """``--out`` before any work: a folder (or a path to make one) that is not a ``generate``
    output, does not overlap the answer keys it is made from, and where no input would be replaced."""
    from trainwall.core.errors import InputError
    from trainwall.core.outputs import check_target

    source = Path(reference)
    folders = []
    if source.is_dir():
        folders.append(source / "keys" if (source / "keys").is_dir() else source)
    out = check_target(out, "--out", folder=True, folders=folders)
    if (out / "keys" / "index.csv").exists() or (out / "handouts").exists():
        raise InputError("--out", str(out), "holds a trainwall generate output (handouts/, keys/index.csv), whose "
                         "answer keys a bundle would replace: choose another folder")
    keys = out / "keys"
    if os.path.lexists(keys) and (not keys.is_dir() or any(not n.endswith(".json") for n in os.listdir(keys))):
        raise InputError("--out", str(out), "keys/ holds files that are not answer keys, which a bundle would "
                         "replace: choose another folder")
    if source.is_file():
        mine = [out / "setup.sh", out / "run_autograder"]
        if source.resolve().is_relative_to((out / "keys").resolve()) or source.resolve() in {p.resolve() for p in mine}:
            raise InputError("--out", str(out), f"the bundle would replace its own input {reference}")
    return out


def _keys(reference: str) -> dict[str, str]:
    """The bundle's answer keys, by file name."""
    from trainwall.challenges.answers import optimum
    from trainwall.challenges.mission import resolve

    source = Path(reference)
    if source.is_dir():
        from trainwall.challenges.answers import load_keys

        load_keys(source)   # refuse a folder that holds no valid keys
        folder = source / "keys" if (source / "keys").is_dir() else source
        return {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.json"))
                if path.is_file()}
    mission = resolve(reference)
    key = {"mission": mission.model_dump(mode="json", exclude_none=True), "optimum": optimum(mission).to_dict()}
    name = mission.reference.replace("/", "-").replace("@", "-")
    return {f"{name}.json": json.dumps(key, indent=2, sort_keys=True) + "\n"}


def write_bundle(reference: str, out: str | Path, requirement: str) -> Path:
    """The bundle for a mission id / file, or a ``generate`` output folder (its variants).

    Every file is written atomically; the keys are written aside and put in place of an
    earlier bundle's ``keys/`` whole, so two bundles' keys never mix."""
    from trainwall.core.outputs import atomic_write, remove_staging, replace_folder, staging_folder

    out = check_out(reference, out)
    keys = _keys(reference)
    out.mkdir(parents=True, exist_ok=True)
    wheel = Path(requirement)
    if wheel.suffix == ".whl" and wheel.is_file():      # ship the wheel: no package index needed
        if wheel.resolve() != (out / wheel.name).resolve():
            atomic_write(out / wheel.name, wheel.read_bytes())
        requirement = f"/autograder/source/{wheel.name}"
    stage = staging_folder(out, "bundle")
    try:
        (stage / "keys").mkdir()
        for name, text in keys.items():
            atomic_write(stage / "keys" / name, text)
        for name, text in (("setup.sh", SETUP.format(requirement=_quote(requirement))), ("run_autograder", RUN)):
            atomic_write(out / name, text, mode=0o755)
        replace_folder(stage / "keys", out / "keys", stage / "replaced-keys")
    finally:
        remove_staging(stage)
    return out


def _quote(requirement: str) -> str:
    import shlex

    return shlex.quote(requirement)
