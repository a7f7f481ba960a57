"""Fuzzing the submission parser and checker: whatever arrives, `trainwall grade` never crashes,
always writes a parseable results file, and exits 0 (graded) or 2 (malformed); 1 would be
a bug of ours."""

import json
import os
import tempfile
from pathlib import Path

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_schemas import GRADESCOPE, PRAIRIELEARN
from trainwall.cli import main

#: TRAINWALL_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_submissions.py runs a deeper search.
SETTINGS = settings(max_examples=int(os.environ.get("TRAINWALL_FUZZ_EXAMPLES", "120")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                           inner, max_size=4),
                      max_leaves=12)
TRAINING = ["optimizer", "precision", "recompute", "micro_batch", "global_batch", "tensor_parallel",
            "pipeline_parallel", "data_parallel", "zero_stage", "trainable", "gradient_clipping", "local_steps",
            "loss_scaling", "optimizer_state"]
DATA = ["workers", "augmentation", "augmentation_on", "echo"]
plausible = st.fixed_dictionaries(
    {"mission": st.sampled_from(["mobile/1", "cloud/2", "cloud/3", "tiny/3", "edge/1", "cloud/3@ab12", "x"]),
     "configuration": st.fixed_dictionaries({
         "training": st.dictionaries(st.sampled_from(TRAINING), values | st.integers(0, 64), max_size=5),
         "data": st.dictionaries(st.sampled_from(DATA), values | st.integers(0, 200), max_size=3)})},
    optional={"student": values, "predictions": st.dictionaries(st.text(max_size=12), values, max_size=3),
              "moves": st.lists(st.fixed_dictionaries({"data": st.dictionaries(st.sampled_from(DATA),
                                                                              st.integers(0, 200), max_size=2)}),
                                max_size=6)})


def _grade(raw: bytes, suffix: str, fmt: str) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"submission{suffix}"
        path.write_bytes(raw)
        out = Path(tmp) / "results"
        code = main(["grade", str(path), "--format", fmt, "--output", str(out)])
        return code, out.read_text()


def _check(code: int, body: str, fmt: str) -> None:
    assert code in (0, 2)
    if fmt == "gradescope":
        jsonschema.validate(json.loads(body), GRADESCOPE)
    elif fmt == "prairielearn":
        jsonschema.validate(json.loads(body), PRAIRIELEARN)
    elif fmt == "json":
        out = json.loads(body)
        assert 0 <= out["score"] <= out["max_score"]


@SETTINGS
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".toml", ".json", ".yaml", ".txt"]),
       fmt=st.sampled_from(["json", "gradescope", "prairielearn", "junit", "text"]))
def test_random_bytes(raw, suffix, fmt):
    _check(*_grade(raw, suffix, fmt), fmt)


@SETTINGS
@given(text=st.text(max_size=300), suffix=st.sampled_from([".toml", ".json", ".yaml"]),
       fmt=st.sampled_from(["json", "prairielearn"]))
def test_random_text(text, suffix, fmt):
    _check(*_grade(text.encode("utf-8", "surrogatepass"), suffix, fmt), fmt)


@SETTINGS
@given(data=plausible, fmt=st.sampled_from(["json", "gradescope", "prairielearn"]))
def test_plausible_submissions(data, fmt):
    raw = json.dumps(data, allow_nan=True).encode()
    _check(*_grade(raw, ".json", fmt), fmt)


@SETTINGS
@given(draw=st.data())
def test_plans_inside_each_missions_decisions(draw):
    """Every value a mission lists, in any combination (plus odd global batches and move logs):
    the cost model must evaluate or refuse each one cleanly."""
    from trainwall.challenges.mission import IntRange, mission, shipped_ids

    m = mission(draw.draw(st.sampled_from(shipped_ids())))
    chosen = {"training": {}, "data": {}}
    for field, allowed in m.decisions.items():
        section, name = field.split(".")
        if name == "micro_batches" or not draw.draw(st.booleans()):
            continue
        chosen[section][name] = draw.draw(st.integers(allowed.min - 1, allowed.max + 1)
                                          if isinstance(allowed, IntRange) else st.sampled_from(allowed))
    if m.part == 3 and draw.draw(st.booleans()):
        chosen["training"]["global_batch"] = draw.draw(st.integers(1, 2 * m.limits.global_batch))
    if m.select_layers and draw.draw(st.booleans()):
        chosen["training"]["trainable"] = draw.draw(st.lists(st.integers(0, 90), max_size=6, unique=True))
    data = {"mission": m.id, "configuration": chosen}
    if m.part == 2:
        data["moves"] = draw.draw(st.lists(st.fixed_dictionaries({"data": st.fixed_dictionaries(
            {"workers": st.integers(0, 130)})}), max_size=6))
    _check(*_grade(json.dumps(data).encode(), ".json", "json"), "json")


#: ``last:N`` with N in any digits: ASCII, superscript, Arabic-Indic, Devanagari, fullwidth; and huge N.
DIGITS = "0123456789²³¹١٢٣٤۵९０１２"


@SETTINGS
@given(head=st.sampled_from(["last", "first", "Last"]), digits=st.text(st.sampled_from(DIGITS), max_size=8),
       suffix=st.sampled_from([".toml", ".json", ".yaml"]))
def test_trainable_with_any_digits_is_graded_or_malformed(head, digits, suffix):
    """tiny/1 lets the student choose the layers: "last:²" or "last:١" is the student's mistake (exit 2),
    never the grader's (exit 1), and never read as a number."""
    spec = f"{head}:{digits}"
    data = {"mission": "tiny/1", "configuration": {"training": {"trainable": spec}}}
    raw = {".toml": f'mission = "tiny/1"\n[configuration.training]\ntrainable = {json.dumps(spec)}\n',
           ".json": json.dumps(data), ".yaml": json.dumps(data)}[suffix]
    code, body = _grade(raw.encode("utf-8"), suffix, "json")
    _check(code, body, "json")
    if not digits.isascii() or head != head.lower():
        assert code == 2 and "training.trainable" in json.loads(body)["format_errors"][0]
