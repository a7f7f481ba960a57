"""``trainwall autograder prairielearn MISSION... --image NAME --out DIR``: PrairieLearn questions.

PrairieLearn (docs.prairielearn.com: "External Grading", "server.py", "clientFiles and
serverFiles") grades a question in a Docker image with networking off: the question's
``tests/`` in ``/grade/tests``, the student's files in ``/grade/student``, the variant's
``data`` (with its ``params``) in ``/grade/data/data.json``; the job must leave
``/grade/results/results.json``. A question's ``server.py`` makes each variant
(``generate``) and serves generated downloads (``file``, for ``pl-file-download
type="dynamic"``); files in a question's folder other than ``clientFilesQuestion/`` are
never served to students. The bundle holds:

* ``image/``: ``Dockerfile``, ``setup.sh`` and the running trainwall as a wheel
  (:func:`trainwall.challenges.autograder.pip_argument`). Grading has no network, so
  trainwall is installed into the image once, by ``docker build``;
* ``questions/trainwall-<track>-<part>/`` per mission: ``info.json`` (external grading by
  that image, ``/grade/tests/run.sh`` as entrypoint), ``question.html``, ``server.py``,
  ``variants.json`` (each variant's brief, handout and submission template; read by
  ``server.py`` only) and ``tests/`` (``run.sh``, ``bundle.json``, ``keys/``);
* ``assessment.json``: the ``zones`` of an ``infoAssessment.json`` with each question's points.

Identity is the variant: PrairieLearn does not tell question code who the student is, so
each PrairieLearn variant is one trainwall variant (chosen from its ``variant_seed``), and
the grader (:mod:`trainwall.challenges.prairielearn_run`) refuses a file made for another
variant. Variant ids are therefore numbered (``generate --count N``), never names: a
student sees only an id such as ``variant-017``.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from trainwall.challenges.autograder import run_script

#: Seconds PrairieLearn gives one grading job (its default is 30; the limit 600).
TIMEOUT_S = 60
#: Where ``image/setup.sh`` installs trainwall inside the image.
VENV = "/opt/trainwall"
#: A variant id PrairieLearn may show a student: generate --count's numbering.
NUMBERED = re.compile(r"variant-\d+")

SETUP = """#!/usr/bin/env bash
# The image's Dockerfile runs this once: grading jobs have no network, so trainwall and its
# dependencies are installed here, into a virtual environment.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${{TRAINWALL_VENV:-{venv}}}"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --no-cache-dir --upgrade pip
"$VENV/bin/python" -m pip install --no-cache-dir {requirement}
"""

DOCKERFILE = """# The PrairieLearn grading image for trainwall {version}:
#   docker build -t {image} . && docker push {image}
FROM python:3.11-slim
COPY . /opt/trainwall-image
RUN bash /opt/trainwall-image/setup.sh && rm -rf /opt/trainwall-image
"""

RUN = run_script("PrairieLearn", "GRADE_ROOT:-/grade", f"{VENV}/bin/python", "trainwall.challenges.prairielearn_run",
                 '{"gradable": false, "score": 0.0, "message": "the grader failed", "format_errors": ["%s"]}')

SERVER = '''"""A trainwall mission as a PrairieLearn question (written by trainwall autograder prairielearn).

generate: this PrairieLearn variant's trainwall variant, chosen by the variant seed.
file: its downloads (submission.toml, and mission.toml where the mission has variants)."""

import json
import random


def _variants():
    with open("variants.json", encoding="utf-8") as f:   # the question folder is the working folder
        return json.load(f)


def generate(data):
    found = _variants()
    chosen = found["variants"][random.Random(data["variant_seed"]).randrange(len(found["variants"]))]
    data["params"].update(variant=chosen["id"], mission=chosen["reference"], title=chosen["title"],
                          brief=chosen["brief"], handout=chosen["handout"] is not None)


def file(data):
    chosen = next(v for v in _variants()["variants"] if v["id"] == data["params"]["variant"])
    return {"submission.toml": chosen["submission"], "mission.toml": chosen["handout"]}.get(data["filename"]) or ""
'''

QUESTION = """<pl-question-panel>
  <p><strong>{{params.title}}</strong> (trainwall mission <code>{{params.mission}}</code>)</p>
  <pre>{{params.brief}}</pre>
  <p>Explore it with trainwall (<code>trainwall show</code>, <code>evaluate</code>, <code>grade</code>),
  fill in the submission file, then upload it here.</p>
  {{#params.handout}}<p><pl-file-download file-name="mission.toml" type="dynamic"
    label="your mission (mission.toml)"></pl-file-download></p>{{/params.handout}}
  <p><pl-file-download file-name="submission.toml" type="dynamic"
    label="your submission template (submission.toml)"></pl-file-download></p>
  <pl-file-upload file-names="submission.toml"></pl-file-upload>
</pl-question-panel>

<pl-submission-panel>
  <pl-external-grader-results></pl-external-grader-results>
  <pl-file-preview></pl-file-preview>
</pl-submission-panel>
"""


def write_prairielearn(references: list[str] | str, out: str | Path, image: str, requirement: str | None = None,
                       points: dict[str, float] | None = None) -> Path:
    """The bundle (the module docstring) for mission ids / files and ``generate --count`` folders.

    Every file is written atomically; the questions are written aside and put in place of an
    earlier bundle's ``questions/`` whole, so two bundles' keys never mix."""
    from trainwall.challenges.autograder import bundle_config, check_out, config_of, pip_argument
    from trainwall.core import VERSION
    from trainwall.core.outputs import atomic_write, remove_staging, replace_folder, staging_folder

    references = [references] if isinstance(references, str) else list(references)
    for reference in references:
        out = check_out(reference, out)
    _check_image(image)
    keys, config = bundle_config(references, points or {}, "visible")
    variants = {mission_id: _variants(mission_id, texts) for mission_id, texts in keys.items()}
    (out / "image").mkdir(parents=True, exist_ok=True)
    requirement = pip_argument(out / "image", requirement, "$HERE")
    atomic_write(out / "image" / "setup.sh", SETUP.format(venv=VENV, requirement=requirement), mode=0o755)
    atomic_write(out / "image" / "Dockerfile", DOCKERFILE.format(version=VERSION, image=image))
    stage = staging_folder(out, "prairielearn")
    try:
        for mission_id, texts in keys.items():
            question = stage / "questions" / question_name(mission_id)
            bundle = config_of({mission_id: texts}, {mission_id: config["points"][mission_id]}, "visible")
            _write_question(question, variants[mission_id], texts, bundle,
                            _info(mission_id, variants[mission_id][0]["title"], image,
                                  json.dumps(bundle["keys"], sort_keys=True)))
        replace_folder(stage / "questions", out / "questions", stage / "replaced-questions")
    finally:
        remove_staging(stage)
    zone = [{"id": question_name(m), "points": p} for m, p in config["points"].items()]
    atomic_write(out / "assessment.json", _dump({"zones": [{"title": "trainwall", "questions": zone}]}))
    return out


def _write_question(folder: Path, variants: list[dict], keys: dict[str, str], bundle: dict, info: dict) -> None:
    from trainwall.core.outputs import atomic_write

    (folder / "tests" / "keys").mkdir(parents=True)
    atomic_write(folder / "info.json", _dump(info))
    atomic_write(folder / "question.html", QUESTION)
    atomic_write(folder / "server.py", SERVER)
    atomic_write(folder / "variants.json", _dump({"variants": variants}))
    atomic_write(folder / "tests" / "run.sh", RUN, mode=0o755)
    atomic_write(folder / "tests" / "bundle.json", _dump(bundle))
    for name, text in keys.items():
        atomic_write(folder / "tests" / "keys" / name, text)


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def _check_image(image: str) -> None:
    """A Docker image reference PrairieLearn can pull: ``[registry/]name[:tag][@digest]``."""
    from trainwall.core.errors import InputError

    if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?", image or "") \
            or len(image) > 255:
        raise InputError("--image", image, "a Docker image PrairieLearn can pull, e.g. myorg/trainwall-grader:1 "
                         "(lower-case name, optional :tag): build and push it from the bundle's image/ folder")


def _variants(mission_id: str, keys: dict[str, str]) -> list[dict]:
    """Each variant's id, reference, brief, handout and submission template, from its answer
    key; a shipped mission's single key (no student) is one variant with no id or handout."""
    from trainwall.challenges.brief import mission_brief
    from trainwall.challenges.mission import parse_mission
    from trainwall.challenges.variants import handout_text, submission_template
    from trainwall.core.errors import InputError

    found = []
    for name, text in keys.items():
        key = json.loads(text)
        student, m = key.get("student"), parse_mission(key["mission"], name)
        if student is None and len(keys) == 1:
            found.append({"id": "", "reference": m.reference, "title": m.rendered().title,
                          "brief": mission_brief(m), "handout": None,
                          "submission": submission_template(m, m.reference, None, current=True)})
            continue
        if not isinstance(student, str) or not NUMBERED.fullmatch(student):
            raise InputError("MISSION", mission_id, f"its variant {student!r} is named, not numbered: PrairieLearn "
                             "does not tell question code who the student is, so each student would see another's "
                             "id. Make the variants with trainwall generate MISSION --count N")
        found.append({"id": student, "reference": m.reference, "title": m.rendered().title, "brief": mission_brief(m),
                      "handout": handout_text(key["mission"], student),
                      "submission": submission_template(m, m.reference, student)})
    return sorted(found, key=lambda v: v["id"])


def question_name(mission_id: str) -> str:
    """The question's folder (PrairieLearn's QID): ``trainwall-cloud-1``."""
    return "trainwall-" + mission_id.replace("/", "-")


def _info(mission_id: str, title: str, image: str, digest: str) -> dict:
    """The question's ``info.json``; its uuid follows from the mission and its keys, so the
    same keys give the same question and new keys (a new term's variants) a new one."""
    track, _, part = mission_id.partition("/")
    return {"uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"trainwall:{mission_id}:{digest}")),
            "title": f"trainwall {mission_id}: {title}", "topic": "Model training",
            "tags": ["trainwall", track, f"part{part}"], "type": "v3", "gradingMethod": "External",
            "externalGradingOptions": {"enabled": True, "image": image, "entrypoint": "/grade/tests/run.sh",
                                       "timeout": TIMEOUT_S}}
