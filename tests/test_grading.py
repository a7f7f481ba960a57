"""trainwall grade: known-optimal, near-optimal, poor, infeasible (each wall), malformed and
hostile submissions give the expected scores, exit codes and results files; the
platform files validate against the schemas the platforms publish (platform_schemas.py).
"""

import json
import types
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from platform_schemas import GRADESCOPE, PRAIRIELEARN
from trainwall.challenges import answers, grading, plans
from trainwall.challenges.mission import gap, mission, parse_mission, shipped_ids
from trainwall.core.errors import MissionError
from trainwall.cli import main
from trainwall.optimizer.costmodel import evaluate

FORMATS = ("text", "json", "gradescope", "prairielearn", "junit")


def submission_text(mission_id, training=None, data=None, predictions=None, extra=""):
    lines = [f'mission = "{mission_id}"', 'student = "ab123"', "[configuration.training]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in (training or {}).items()]
    lines += ["[configuration.data]"] + [f"{k} = {json.dumps(v)}" for k, v in (data or {}).items()]
    lines += ["[predictions]"] + [f"{k} = {v!r}" for k, v in (predictions or {}).items()]
    return "\n".join(lines) + "\n" + extra


def optimal_submission(mission_id, predictions=True):
    m = mission(mission_id)
    best = answers.optimum(m)
    return submission_text(mission_id, best.configuration["training"], best.configuration["data"],
                           best.lock_answers if predictions else {})


def grade(tmp_path, text, *args, fmt="json", name="submission.toml"):
    """Run `trainwall grade` in-process; the results file it wrote, parsed, and the exit code."""
    path = tmp_path / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    out = tmp_path / f"results-{fmt}.out"
    code = main(["grade", str(path), "--format", fmt, "--output", str(out), *args])
    body = out.read_text()
    if fmt in ("json", "gradescope", "prairielearn"):
        return code, json.loads(body)
    if fmt == "junit":
        return code, ET.fromstring(body)
    return code, body


def points(mission_id):
    return grading.weights(mission(mission_id))


# --- the score curve -------------------------------------------------------------------------------

def test_doublings_scale_gives_partial_credit_on_a_power_of_two_grid():
    """A batch-like objective: half the optimum is one doubling short, not 50 % short."""
    from trainwall.challenges.mission import GradingPolicy

    policy = GradingPolicy(scale="doublings", full_credit_gap=0.0, zero_credit_gap=3.0)
    assert policy.shortfall("maximize", 128, 256) == 1.0 and policy.shortfall("maximize", 256, 256) == 0.0
    assert policy.shortfall("minimize", 8, 2) == 2.0
    assert [grading.credit(policy, policy.shortfall("maximize", v, 256)) for v in (512, 256, 128, 64, 32, 16)] \
        == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3, 0.0, 0.0])
    assert policy.describe(1.0) == "1 doubling" and policy.describe(3.0) == "3 doublings"


def test_edge_1_micro_batch_earns_credit_per_doubling(tmp_path):
    """edge/1 maximises the micro-batch on a grid 16..512: a stable, fitting plan one doubling
    below the optimum earns 2/3 of the objective points (issue 12: it earned nothing)."""
    m = mission("edge/1")
    best = answers.optimum(m)
    assert m.grading.scale == "doublings"
    config = dict(best.configuration["training"])
    config["micro_batch"] = int(best.objective) // 2
    code, out = grade(tmp_path, submission_text("edge/1", {k: config[k] for k in (
        "precision", "loss_scaling", "optimizer", "recompute", "micro_batch")}))
    assert code == 0 and out["feasible"] and out["gap"] is None     # a decision objective: the gap would give the answer
    objective = next(t for t in out["tests"] if t["name"].startswith("objective"))
    hand = (m.grading.zero_credit_gap - 1.0) / (m.grading.zero_credit_gap - m.grading.full_credit_gap)
    assert objective["score"] == pytest.approx(points("edge/1")["objective"] * hand, rel=1e-12)
    assert 0 < objective["score"] < points("edge/1")["objective"]


def test_a_relative_gap_beyond_one_is_the_missions_error():
    data = mission("cloud/3").model_dump()
    data["grading"] = {"zero_credit_gap": 3.0}
    with pytest.raises(MissionError, match="doublings"):
        parse_mission(data, "strict.toml")


def test_credit_curve_is_the_documented_one():
    policy = mission("cloud/3").grading          # full within 1 %, none from 25 %
    assert grading.credit(policy, 0.0) == 1.0
    assert grading.credit(policy, 0.01) == 1.0
    assert grading.credit(policy, 0.13) == pytest.approx((0.25 - 0.13) / 0.24)
    assert grading.credit(policy, 0.25) == 0.0
    assert grading.credit(policy, 0.9) == 0.0
    assert gap("maximize", 0.3, 0.4) == pytest.approx(0.25)
    assert gap("minimize", 12, 8) == pytest.approx(0.5)


def test_weights_renormalise_over_what_a_mission_has():
    assert points("cloud/3") == pytest.approx({"objective": 0.7 / 0.9, "predictions": 0.2 / 0.9})
    assert points("cloud/2") == pytest.approx({"objective": 0.7, "predictions": 0.2, "moves": 0.1})


# --- known optimal, near optimal, poor -------------------------------------------------------------

@pytest.mark.parametrize("mission_id", shipped_ids())
def test_the_certified_optimum_with_right_predictions_earns_everything_but_the_move_log(mission_id):
    g = grading.grade_submission(mission(mission_id), _parse(optimal_submission(mission_id)),
                                 answers.optimum(mission(mission_id)), "t")
    assert g.gradable and g.feasible and g.gap == pytest.approx(0.0, abs=1e-12)
    expected = 1.0 - points(mission_id).get("moves", 0.0)   # no move log submitted
    assert g.score == pytest.approx(expected)
    assert all(c.passed for c in g.checks if not c.name.endswith("move rule"))


def _parse(text, source="t"):
    import tomllib

    from trainwall.challenges.submission import parse_submission

    return parse_submission(tomllib.loads(text), source)


def _near_optimal(best) -> dict:
    """cloud/3's optimum with 14 fewer micro-batches per step: the same layout, a smaller global
    batch (more steps, each cheaper), a few per cent dearer."""
    config = dict(best.configuration["training"])
    per_round = config["data_parallel"] * config["micro_batch"]
    config["global_batch"] -= 14 * per_round
    return config


def test_near_optimal_plan_earns_the_curve_value(tmp_path):
    """cloud/3's optimum with a smaller global batch: dearer by a few per cent, on the curve."""
    m = mission("cloud/3")
    best = answers.optimum(m)
    config = _near_optimal(best)
    code, out = grade(tmp_path, submission_text("cloud/3", config, {}, best.lock_answers))
    assert code == 0 and out["feasible"]
    plan = evaluate(plans.from_configuration(m, {"training": config}))
    shortfall = (plan.training.dollars - best.objective) / best.objective
    assert out["gap"] == pytest.approx(shortfall, rel=1e-9)
    assert 0.01 < shortfall < 0.25
    expected = points("cloud/3")["objective"] * (0.25 - shortfall) / 0.24 + points("cloud/3")["predictions"]
    assert out["score"] == pytest.approx(expected, rel=1e-9)
    # the plan's memory equals the optimum's: the lever that is short is named, not a wall to push
    assert any("global batch is below what the optimum uses" in f for f in out["feedback"]), out["feedback"]
    assert not any("memory wall" in f for f in out["feedback"])


def test_poor_feasible_plan_gets_direction_but_not_the_optimum(tmp_path):
    """mobile/1 training only its last two layers with SGD: feasible, far below the optimum."""
    best = answers.optimum(mission("mobile/1"))
    plan = {"optimizer": "sgd", "recompute": "full", "trainable": "last:2"}
    code, out = grade(tmp_path, submission_text("mobile/1", plan))
    assert code == 0 and out["feasible"] is True
    assert out["gap"] > 0.25
    objective = next(t for t in out["tests"] if t["name"].startswith("objective"))
    assert objective["score"] == 0 and out["score"] == 0
    assert any("memory wall binds at the optimum; your plan leaves room on it" in f for f in out["feedback"])
    assert any("another choice of layers that train" in f for f in out["feedback"]), out["feedback"]
    shown = json.dumps(out)
    assert str(best.configuration["training"]["trainable"]) not in shown
    assert json.dumps(best.configuration["training"]["trainable"]) not in shown


def test_custom_grading_policy_changes_the_curve(tmp_path):
    """A mission's [grading] table is the configuration of the curve."""
    base = (Path(__file__).resolve().parents[1] / "challenges" / "cloud" / "3.toml").read_text()
    path = tmp_path / "strict.toml"
    path.write_text(base + "\n[grading]\nfull_credit_gap = 0.10\nzero_credit_gap = 0.5\nmax_score = 10.0\n")
    best = answers.optimum(mission("cloud/3"))
    code, out = grade(tmp_path, submission_text("cloud/3", _near_optimal(best)), "--mission", str(path))
    assert code == 0
    assert out["max_score"] == 10.0
    assert out["score"] == pytest.approx(10.0 * 0.7 / 0.9)   # within 10 %: full objective credit, no predictions


# --- infeasible, wall by wall ----------------------------------------------------------------------

INFEASIBLE = {
    "memory": ("mobile/1", {}, {}),                                         # fp32 Adam on every layer
    "stability": ("edge/1", {"precision": "fp16-mixed", "loss_scaling": "none", "optimizer": "sgd",
                             "micro_batch": 16, "recompute": "full"}, {}),
    "starvation": ("cloud/2", {}, {"workers": 1, "augmentation_on": "cpu"}),
    "mfu_target": ("edge/3", {"global_batch": 256, "local_steps": 8, "loss_scaling": "dynamic"}, {}),
    "deadline": ("cloud/3", {"data_parallel": 16, "global_batch": 512}, {}),  # 512 GPUs: well past the deadline
}


@pytest.mark.parametrize("wall", sorted(INFEASIBLE))
def test_infeasible_plan_scores_only_its_predictions(tmp_path, wall):
    mission_id, training, data = INFEASIBLE[wall]
    lock_answers = answers.optimum(mission(mission_id)).lock_answers
    code, out = grade(tmp_path, submission_text(mission_id, training, data, lock_answers))
    assert code == 0 and out["gradable"] and out["feasible"] is False
    failed = [t["name"] for t in out["tests"] if t["status"] == "failed"]
    assert f"wall: {wall}" in failed
    assert out["score"] == pytest.approx(points(mission_id)["predictions"])
    assert any(f"the {wall} wall" in f for f in out["feedback"])
    broken = next(w for w in out["walls"] if w["constraint"] == wall)
    assert broken["satisfied"] is False and broken["slack"] < 0


def test_network_and_flash_walls_are_checked_from_the_metrics():
    """No shipped mission can break these (see the issue-3 note), so the checker is tested on
    metrics with known numbers: 120 % of the link and 1.5 MB of frozen weights in 1 MB of flash."""
    m = mission("tiny/3").model_copy(update={"constraints": ["memory", "flash", "network"]})
    memory = types.SimpleNamespace(total=100.0, capacity=200.0, flash=1.5e6, flash_capacity=1.0e6)
    metrics = types.SimpleNamespace(memory=memory, network_utilization=1.2, violations=(), mfu=0.5,
                                    pipeline=None)
    walls = {w.wall: w for w in m.checks(metrics)}
    assert walls["memory"].satisfied and walls["memory"].slack == 100.0
    assert walls["network"].value == 1.2 and walls["network"].slack == pytest.approx(-0.2)
    assert walls["flash"].slack == pytest.approx(-0.5e6)


# --- the part-2 move log ---------------------------------------------------------------------------

def _moves(*moves):
    out = []
    for move in moves:
        out.append("[[moves]]\n[moves.data]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in move.items()))
    return "\n".join(out)


def test_five_move_rule_replays_the_log_from_the_naive_plan(tmp_path):
    best = answers.optimum(mission("cloud/2"))
    assert best.configuration["data"]["workers"] == 71   # the balance point the moves aim at
    quick = _moves({"augmentation_on": "accelerator"}, {"workers": 64}, {"workers": 71})
    code, out = grade(tmp_path, optimal_submission("cloud/2") + quick)
    assert code == 0 and out["moves_to_balance"] == 3
    assert out["score"] == pytest.approx(1.0)
    slow = _moves({"augmentation_on": "accelerator"}, {"workers": 8}, {"workers": 16}, {"workers": 32},
                  {"workers": 64}, {"workers": 71})
    code, out = grade(tmp_path, optimal_submission("cloud/2") + slow)
    rule = next(t for t in out["tests"] if t["name"] == "5-move rule")
    assert out["moves_to_balance"] == 6 and rule["status"] == "failed" and rule["score"] == 0
    code, out = grade(tmp_path, optimal_submission("cloud/2") + _moves({"workers": 72}))
    assert out["moves_to_balance"] is None        # 72 workers: 1.4 % above the balance point


def test_a_move_log_that_ends_elsewhere_earns_no_move_credit(tmp_path):
    """Issue 14: a log ending at 90 workers beside a configuration of 71 was not flagged. The
    log must end at the submitted plan; otherwise it is another search and earns nothing."""
    elsewhere = _moves({"augmentation_on": "accelerator"}, {"workers": 71}, {"workers": 90})
    code, out = grade(tmp_path, optimal_submission("cloud/2") + elsewhere)
    rule = next(t for t in out["tests"] if t["name"] == "5-move rule")
    assert code == 0 and rule["score"] == 0 and out["moves_to_balance"] is None
    assert "ends at a plan other than the one submitted" in rule["output"] and "data.workers" in rule["output"]
    ending_there = _moves({"augmentation_on": "accelerator"}, {"workers": 90}, {"workers": 71})
    code, out = grade(tmp_path, optimal_submission("cloud/2") + ending_there)
    assert out["moves_to_balance"] == 3 and out["score"] == pytest.approx(1.0)


def test_move_outside_the_decisions_is_malformed(tmp_path):
    code, out = grade(tmp_path, optimal_submission("cloud/2") + _moves({"workers": 500}))
    assert code == 2 and not out["gradable"]
    assert "moves.0.data.workers = 500" in out["format_errors"][0]


# --- malformed -------------------------------------------------------------------------------------

MALFORMED = {
    "unknown field": (submission_text("mobile/1", {"micro_batchh": 4}), "configuration.training.micro_batchh"),
    "outside the list": (submission_text("cloud/3", {"tensor_parallel": 16}), "allows 8, 4, 2"),
    "not a decision": (submission_text("cloud/3", {"optimizer": "sgd"}), "not a decision of cloud/3"),
    "wrong type": (submission_text("mobile/1", {"recompute": 3}), "configuration.training.recompute"),
    "unknown mission": (submission_text("cloud/9"), "mission"),
    "unknown prediction": (submission_text("mobile/1", predictions={"bytes_per_param": 16}),
                           "predictions.bytes_per_param"),
    "moves outside part 2": (submission_text("mobile/1") + _moves({"workers": 2}), "a move log belongs to a part-2"),
    "variant without keys": (submission_text("cloud/3@abc123"), "answer-key folder"),
    "too many devices": (submission_text("cloud/3", {"data_parallel": 256, "pipeline_parallel": 4}),
                         "uses 128 to 1024"),
    "global batch not a multiple": (submission_text("cloud/3", {"global_batch": 1000}),
                                    "configuration.training.global_batch"),
    "no configuration": ('mission = "mobile/1"\n', "configuration"),
    "a list, not a table": ("[[x]]\na = 1\n", "x"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_submission_exits_2_and_still_writes_a_results_file(tmp_path, case, fmt):
    text, needle = MALFORMED[case]
    code, out = grade(tmp_path, text, fmt=fmt)
    assert code == 2
    if fmt == "json":
        assert out["gradable"] is False and out["score"] == 0 and needle in out["format_errors"][0]
    elif fmt == "gradescope":
        jsonschema.validate(out, GRADESCOPE)
        assert out["score"] == 0 and needle in out["output"]
    elif fmt == "prairielearn":
        jsonschema.validate(out, PRAIRIELEARN)
        assert out["gradable"] is False and needle in out["format_errors"][0]
    elif fmt == "junit":
        suite = out.find("testsuite")
        assert suite.get("errors") == "1" and needle in suite.find("testcase/error").text
    else:
        assert needle in out


# --- hostile ---------------------------------------------------------------------------------------

HOSTILE = {
    "empty.toml": b"",
    "binary.toml": bytes(range(256)),
    "latin1.toml": 'mission = "mobile/1"\nstudent = "J\xfcrgen"\n'.encode("latin-1"),
    "huge.toml": b"a = 1\n" * 200_000,
    "bomb.yaml": b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
    "deep.json": b"[" * 5000 + b"]" * 5000,
    "nan.json": b'{"mission": "mobile/1", "configuration": {}, "predictions": {"x": NaN}}',
    "control.toml": b'mission = "mobile/1"\nstudent = "\\u0000\\u001b[31m<x>&\\"]]>"\n[configuration]\n',
    "notes.txt": b"I think 16 bytes",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_submission_still_gets_a_valid_results_file(tmp_path, name, fmt):
    code, out = grade(tmp_path, HOSTILE[name], fmt=fmt, name=name)
    assert code in (0, 2)
    if fmt == "gradescope":
        jsonschema.validate(out, GRADESCOPE)
    elif fmt == "prairielearn":
        jsonschema.validate(out, PRAIRIELEARN)
    elif fmt == "json":
        assert out["score"] == 0 or out["gradable"]
    elif fmt == "text":
        assert "\x1b" not in out and "\x00" not in out


def test_control_characters_never_reach_a_results_file(tmp_path):
    code, out = grade(tmp_path, HOSTILE["control.toml"], fmt="junit", name="control.toml")
    assert code == 0   # a plan may be the scenario itself: graded, and the student id is cleaned
    code, body = grade(tmp_path, HOSTILE["control.toml"], fmt="text", name="control.toml")
    assert "\x1b" not in body and "\x00" not in body and "<x>&" in body


# --- platforms and exit codes ----------------------------------------------------------------------

def test_gradable_results_validate_against_the_platform_schemas(tmp_path):
    text = optimal_submission("cloud/3")
    code, gs = grade(tmp_path, text, fmt="gradescope")
    jsonschema.validate(gs, GRADESCOPE)
    assert code == 0 and gs["score"] == pytest.approx(1.0)
    assert sum(t["score"] for t in gs["tests"]) == pytest.approx(gs["score"])
    code, pl = grade(tmp_path, text, fmt="prairielearn")
    jsonschema.validate(pl, PRAIRIELEARN)
    assert pl["gradable"] is True and pl["score"] == pytest.approx(1.0)
    code, xml = grade(tmp_path, text, fmt="junit")
    suite = xml.find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) == len(suite.findall("testcase"))


def test_json_output_has_the_interface_keys(tmp_path):
    code, out = grade(tmp_path, optimal_submission("mobile/1"))
    for key in ("mission", "student", "gradable", "score", "max_score", "feasible", "objective", "optimum", "tests",
                "feedback"):
        assert key in out
    assert out["mission"] == "mobile/1" and out["student"] == "ab123"
    assert {"name", "score", "max_score", "output"} <= set(out["tests"][0])


def test_fail_under_exits_3(tmp_path):
    text = submission_text(*INFEASIBLE["memory"][:1])
    code, _ = grade(tmp_path, text, "--fail-under", "0.5")
    assert code == 3
    code, _ = grade(tmp_path, optimal_submission("mobile/1"), "--fail-under", "0.5")
    assert code == 0


def test_grader_failure_exits_1_and_still_writes_a_results_file(tmp_path, monkeypatch):
    import trainwall.optimizer.costmodel as costmodel

    def broken(config, device=None):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(costmodel, "evaluate", broken)
    code, out = grade(tmp_path, optimal_submission("mobile/1"), fmt="prairielearn")
    assert code == 1
    jsonschema.validate(out, PRAIRIELEARN)
    assert out["gradable"] is False and "ZeroDivisionError" in out["format_errors"][0]


def test_platform_path_needs_a_platform_format(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(optimal_submission("mobile/1"))
    assert main(["grade", str(path), "--format", "json", "--platform-path"]) == 2
    assert "--platform-path needs" in capsys.readouterr().err


def test_python_api_grades_like_the_cli(tmp_path):
    import trainwall

    code, out = grade(tmp_path, optimal_submission("mobile/1"))
    g = trainwall.grade(tmp_path / "submission.toml")
    assert g.score == out["score"] and g.gradable and g.mission == "mobile/1"


def test_starvation_slack_is_the_spare_loading_capacity(tmp_path):
    """80 workers where 71 balance cloud/2: the loading stages could deliver more than the GPUs
    take; the slack is the seconds of compute the loading leaves unused (the step's busy time
    less the loading it hides), the spare capacity in time."""
    from trainwall.challenges.submission import plan
    from trainwall.optimizer.costmodel import evaluate

    code, out = grade(tmp_path, submission_text("cloud/2", {}, {"workers": 80, "augmentation_on": "accelerator"}))
    wall = next(w for w in out["walls"] if w["constraint"] == "starvation")
    metrics = evaluate(plan(mission("cloud/2"), {"data.workers": 80, "data.augmentation_on": "accelerator"}, "t"))
    flow, t = metrics.pipeline, metrics.time
    spare = min(flow.capacities["storage"], flow.capacities["cpu"], flow.capacities["host_link"])
    assert flow.rate == flow.capacities["compute"]      # fed: the flow equals the demand
    fresh_per_step = flow.capacities["compute"] * t.step_s              # fresh samples per step and host
    assert t.data_stall_s == 0 and t.loading_s == pytest.approx(fresh_per_step / spare, rel=1e-12)
    assert wall["satisfied"] and wall["slack"] == pytest.approx(t.step_s - fresh_per_step / spare, rel=1e-9)
    assert wall["slack"] > 0
    assert any("workers can be lower" in f for f in out["feedback"])


def test_a_device_or_fifo_posing_as_a_submission_is_refused_not_read(tmp_path):
    """/dev/zero behind a .toml name would never end; a FIFO would block: both are refused."""
    import os

    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.toml")
    for name in ("zero.toml", "fifo.toml"):
        out = tmp_path / f"{name}.json"
        assert main(["grade", str(tmp_path / name), "--format", "json", "--output", str(out)]) == 2
        assert "is not a regular file" in json.loads(out.read_text())["format_errors"][0]


# --- whose mistake: the student's, or the mission's --------------------------------------------------

def _shipped_data(mission_id: str) -> dict:
    import tomllib

    from trainwall.challenges.mission import _shipped_path

    return tomllib.loads(_shipped_path(mission_id).read_text())


@pytest.mark.parametrize("mission_id, at, field", [
    ("cloud/3", {"training": {"tensor_parallel": 3}}, "lock.0.at.training.data_parallel"),
    ("mobile/1", {"training": {"precision": "fp9"}}, "lock.0.at.training.precision"),
    ("edge/1", {"system": {"accelerator": "h100-sxmm"}}, "lock.0.at.system.accelerator"),
])
def test_a_lock_that_breaks_a_rule_fails_when_the_mission_loads(mission_id, at, field):
    """The author's mistake is found at load, naming the file, the Lock and the field -
    not when a student's file is graded."""
    from trainwall.challenges.mission import parse_mission
    from trainwall.core.errors import MissionError

    data = _shipped_data(mission_id)
    data["lock"][0]["at"] = at
    with pytest.raises(MissionError) as caught:
        parse_mission(data, "course/mission.toml")
    message = str(caught.value)
    assert message.startswith(f"course/mission.toml: {field} = ")
    assert caught.value.field == field


def test_every_part_of_a_mission_is_checked_at_load():
    from trainwall.challenges.mission import parse_mission
    from trainwall.core.errors import MissionError

    for mutate, field in [(lambda d: d["naive"].update(training={"micro_batch": 0}), "naive"),
                          (lambda d: d["decisions"].update({"training.precision": ["fp32", "fp7"]}),
                           "decisions.training.precision"),
                          (lambda d: d["lock"][1].update(quantity="state_bytes_per_param",
                                                         at={"training": {"trainable": "none"}}),
                           "lock.1.quantity")]:
        data = _shipped_data("mobile/1")
        mutate(data)
        with pytest.raises(MissionError, match=r"^m\.toml: " + field.replace(".", r"\.")):
            parse_mission(data, "m.toml")


@pytest.mark.parametrize("where, mutate", [
    ("scenario.training.zero_stage", lambda d: (d["scenario"]["system"].update(devices=16),
                                                d["scenario"]["training"].update(data_parallel=2, zero_stage=3))),
    ("decisions.training.zero_stage", lambda d: (d["scenario"]["system"].update(devices=16),
                                                 d["scenario"]["training"].update(data_parallel=2),
                                                 d["decisions"].update({"training.zero_stage": [1, 3]}))),
])
def test_a_mode_the_cost_model_refuses_is_blamed_where_the_author_wrote_it(where, mutate):
    """cloud/1 on two nodes with ZeRO-3, which part 1's per-layer model does not take: the error
    names the scenario's field when the scenario set it, the decisions' when a decision did."""
    from trainwall.challenges.mission import parse_mission
    from trainwall.challenges.solve import solve
    from trainwall.core.errors import MissionError

    data = _shipped_data("cloud/1")
    mutate(data)
    with pytest.raises(MissionError, match="at most 2 in a part-1 mission with data parallelism") as caught:
        solve(parse_mission(data, "c.toml"))
    assert caught.value.field == where


def test_a_mission_that_cannot_be_solved_is_the_graders_failure(tmp_path):
    """Exit 1 and a results file that says the grader failed, never 'fix your submission'."""
    data = _shipped_data("mobile/1")
    data["scenario"]["system"]["memory_budget"] = 1_000_000    # not even the runtime fits: no feasible plan
    data["naive"]["training"] = {"optimizer": "adam"}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    code, out = grade(tmp_path, submission_text("mobile/1", {"optimizer": "sgd"}), "--mission", str(path))
    assert code == 1
    assert out["gradable"] is False and not out["format_errors"]
    assert out["internal_error"].startswith("the grader failed, not your submission")
    assert "not your mistake" in out["feedback"][0]


def test_a_mission_the_grader_does_not_have_is_the_students_mistake(tmp_path):
    """A variant named without its answer keys: the student's file names the wrong thing (exit 2)."""
    bad = submission_text("mobile/1").replace('mission = "mobile/1"', 'mission = "mobile/2@zz"')
    code, out = grade(tmp_path, bad)
    assert code == 2 and out["format_errors"] and out["internal_error"] is None


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_solve_json_is_a_submission_that_earns_full_objective_credit(tmp_path, mission_id):
    """solve --json's configuration pastes into a submission as it stands (issue 14: part 3's
    carried system.devices, which a submission refuses)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "trainwall.cli", "solve", mission_id, "--json"],
                         capture_output=True, text=True, check=True)
    solved = json.loads(run.stdout)
    assert set(solved["configuration"]) <= {"training", "data"}
    submission = {"mission": mission_id, "configuration": solved["configuration"],
                  "predictions": solved["lock_answers"]}
    code, out = grade(tmp_path, json.dumps(submission), name="answer.json")
    objective = next(t for t in out["tests"] if t["name"].startswith("objective"))
    assert code == 0 and out["feasible"] and objective["score"] == objective["max_score"], out["feedback"]


REFLECTION = 'The CPU stage is the longest pole.\nEchoing <b>relieves</b> it: =SUM(1)'


@pytest.mark.parametrize("fmt", ["text", "json", "gradescope", "prairielearn", "junit"])
def test_reflections_reach_every_results_format_ungraded(tmp_path, fmt):
    """Issue 14: a [reflection] table made the file not gradable. It is carried to every
    format as ungraded text for a TA (the score is the same as without it), markup inert."""
    base = optimal_submission("mobile/2")
    with_text = base + "[reflection]\n" + f"2 = {json.dumps(REFLECTION)}\n"
    _, plain = grade(tmp_path, base, fmt="json")
    code, body = grade(tmp_path, with_text, fmt=fmt, name="with.toml")
    assert code == 0
    prompt = mission("mobile/2").rendered().reflection[1]
    shown = body if isinstance(body, str) else json.dumps(body) if fmt != "junit" else ET.tostring(body, "unicode")
    assert "The CPU stage is the longest pole." in shown and prompt[:30] in shown
    assert "<b>" not in shown or fmt in ("text", "json")
    if fmt == "json":
        assert body["score"] == plain["score"]
        assert body["reflections"] == [{"prompt": prompt, "answer": REFLECTION}]


def test_a_reflection_for_a_prompt_the_mission_lacks_is_malformed(tmp_path):
    code, out = grade(tmp_path, optimal_submission("mobile/2") + '[reflection]\n9 = "?"\n')
    assert code == 2 and "reflection.9" in out["format_errors"][0] and "prompts 1 to" in out["format_errors"][0]
