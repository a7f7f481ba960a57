"""``trainwall autograder gradescope MISSION... --out DIR``: a Gradescope autograder bundle.

Gradescope (gradescope-autograders.readthedocs.io, "Autograder Specifications") runs
``setup.sh`` once when the image is built and ``run_autograder`` per submission, with
the student's files in ``/autograder/submission/``, the bundle in
``/autograder/source/``, who submitted in ``/autograder/submission_metadata.json``, and
the results expected in ``/autograder/results/results.json``. The bundle holds:

* ``trainwall-<version>-py3-none-any.whl``: the running trainwall as a wheel
  (:mod:`trainwall.challenges.wheel`), so nothing is installed by name from a package
  index (``--install`` gives another pip requirement instead; a wheel file given there
  is copied into the bundle);
* ``setup.sh``: finds (or installs, with apt-get) Python 3.11+, makes ``venv/`` and
  installs the wheel with its dependencies;
* ``run_autograder``: ``python -m trainwall.challenges.bundle_run`` (every submitted
  file graded against its mission's key, bound to the submitting account; one
  ``results.json``), and a results file of its own when Python cannot even start;
* ``keys/``: each mission's (or every variant's) answer key, so no submission pays for
  a solve and grading cannot drift if trainwall's missions change;
* ``bundle.json``: the missions (several make one assignment: a track's three parts),
  each one's points, the results' visibility, the trainwall version and each key's sha256.

Both scripts read ``AUTOGRADER_ROOT`` (default ``/autograder``); ``run_autograder`` also
``TRAINWALL_PYTHON`` (default the venv's python), so they run on a copy of the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
PY=""
for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))'
    then PY="$candidate"; break; fi
done
if [ -z "$PY" ]; then    # Ubuntu 22.04 ships 3.10; trainwall needs 3.11+
    apt-get update
    apt-get install -y python3.11 python3.11-venv
    PY=python3.11
fi
"$PY" -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install --upgrade pip
"$ROOT/venv/bin/python" -m pip install {requirement}
"""

def run_script(platform: str, root: str, python: str, module: str, failed: str) -> str:
    """A platform's per-submission script: run ``module`` on the platform's folder (``root``:
    ``VARIABLE:-default``), isolated (-I: no file in the working folder and no PYTHON*
    variable can stand in for trainwall), and always leave ``results/results.json``, a
    file: ``failed`` (JSON whose ``%s`` is the reason) when trainwall could not even start."""
    return f"""#!/usr/bin/env bash
# {platform} runs this per submission. It always leaves results/results.json, a file.
ROOT="${{{root}}}"
PYTHON="${{TRAINWALL_PYTHON:-{python}}}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -rf "$RESULTS"     # a file, folder or link left there is never read as this run's
"$PYTHON" -I -m {module} "$ROOT"
status=$?
if [ ! -f "$RESULTS" ] || [ -L "$RESULTS" ] || [ ! -s "$RESULTS" ]; then
    rm -rf "$RESULTS"
    printf '{failed}\\n' \\
        "The autograder could not start trainwall (exit $status); this is not your mistake. Tell your instructor." \\
        > "$RESULTS.part" && mv -f "$RESULTS.part" "$RESULTS"
fi
exit 0
"""


RUN = run_script("Gradescope", "AUTOGRADER_ROOT:-/autograder", "$ROOT/venv/bin/python",
                 "trainwall.challenges.bundle_run",
                 '{"score": 0.0, "output": "%s", "output_format": "text", "visibility": "visible", '
                 '"stdout_visibility": "hidden", "tests": []}')


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


def _keys(reference: str) -> tuple[dict[str, dict[str, str]], dict[str, float]]:
    """The bundle's answer keys of one reference, per mission id by file name (prefixed by the
    mission, so several missions' variants never share a name), and each mission id's points."""
    from trainwall.challenges.answers import optimum
    from trainwall.challenges.mission import resolve

    source = Path(reference)
    if source.is_dir():
        from trainwall.challenges.answers import load_keys

        keys = load_keys(source)   # refuse a folder that holds no valid keys
        folder = source / "keys" if (source / "keys").is_dir() else source
        points = {key.mission.id: key.mission.grading.max_score for key in keys.values()}
        texts: dict[str, dict[str, str]] = {}
        for path in sorted(folder.glob("*.json")):
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                mission_id = json.loads(text)["mission"]["id"]
                texts.setdefault(mission_id, {})[f"{_slug(mission_id)}--{path.name}"] = text
        return texts, points
    mission = resolve(reference)
    key = {"mission": mission.model_dump(mode="json", exclude_none=True), "optimum": optimum(mission).to_dict()}
    text = json.dumps(key, indent=2, sort_keys=True) + "\n"
    return {mission.id: {f"{_slug(mission.reference)}.json": text}}, {mission.id: mission.grading.max_score}


def _slug(reference: str) -> str:
    return reference.replace("/", "-").replace("@", "-")


def bundle_config(references: list[str], points: dict[str, float], visibility: str) -> tuple[dict, dict]:
    """(keys by mission id, then by file name; ``bundle.json``) for the references: every
    mission once, points given for a mission the bundle does not hold refused."""
    from trainwall.challenges.bundle_run import VISIBILITIES
    from trainwall.core.errors import InputError

    if visibility not in VISIBILITIES:
        raise InputError("--visibility", visibility, f"one of {', '.join(VISIBILITIES)}")
    keys, default_points = {}, {}
    for reference in references:
        texts, mission_points = _keys(reference)
        for mission_id in mission_points:
            if mission_id in default_points:
                raise InputError("MISSION", reference, f"{mission_id} is in the bundle already: one key set per mission")
        keys.update(texts)
        default_points.update(mission_points)
    for mission_id, value in points.items():
        if mission_id not in default_points:
            raise InputError("--points", f"{mission_id}={value}", f"the bundle holds {', '.join(default_points)}")
    return keys, config_of(keys, {m: float(points.get(m, p)) for m, p in default_points.items()}, visibility)


def config_of(keys: dict[str, dict[str, str]], points: dict[str, float], visibility: str) -> dict:
    """``bundle.json``: the trainwall version, the missions and their points, the results'
    visibility and each answer key's sha256 (checked before any grade)."""
    from trainwall.core import VERSION

    texts = {name: text for by_name in keys.values() for name, text in by_name.items()}
    return {"trainwall": VERSION, "missions": list(points), "visibility": visibility, "points": points,
            "keys": {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in sorted(texts.items())}}


def write_bundle(references: list[str] | str, out: str | Path, requirement: str | None = None,
                 points: dict[str, float] | None = None, visibility: str = "visible") -> Path:
    """The bundle for mission ids / files and ``generate`` output folders (every variant).

    Every file is written atomically; the keys are written aside and put in place of an
    earlier bundle's ``keys/`` whole, so two bundles' keys never mix."""
    from trainwall.core.outputs import atomic_write, remove_staging, replace_folder, staging_folder

    references = [references] if isinstance(references, str) else list(references)
    for reference in references:
        out = check_out(reference, out)
    keys, config = bundle_config(references, points or {}, visibility)
    out.mkdir(parents=True, exist_ok=True)
    requirement = pip_argument(out, requirement, "$SOURCE")
    stage = staging_folder(out, "bundle")
    try:
        (stage / "keys").mkdir()
        for by_name in keys.values():
            for name, text in by_name.items():
                atomic_write(stage / "keys" / name, text)
        atomic_write(out / "setup.sh", SETUP.format(requirement=requirement), mode=0o755)
        atomic_write(out / "run_autograder", RUN, mode=0o755)
        replace_folder(stage / "keys", out / "keys", stage / "replaced-keys")
        atomic_write(out / "bundle.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    finally:
        remove_staging(stage)
    return out


def pip_argument(folder: Path, requirement: str | None, variable: str) -> str:
    """What a setup script gives ``pip install``: the running trainwall built as a wheel into
    ``folder`` (no package index needed), a given wheel file copied there, or any other pip
    requirement as given; a file in ``folder`` is named through the shell ``variable``."""
    import shlex

    from trainwall.challenges import wheel
    from trainwall.core.outputs import atomic_write

    if requirement is None:
        return f'"{variable}/{wheel.build(folder).name}"'
    given = Path(requirement)
    if given.suffix == ".whl" and given.is_file():
        if given.resolve() != (folder / given.name).resolve():
            atomic_write(folder / given.name, given.read_bytes())
        return f'"{variable}/{given.name}"'
    return shlex.quote(requirement)
