"""The workbench without a browser: the session model and the marimo app run headless
(``app.run`` with chosen definitions) for every shipped mission.

Its instruments are the cost model's numbers for the plan the grader would build; a
Lock's answer appears only once it is locked; every change of the plan is a move; and
Submit writes a file ``trainwall grade`` grades: the optimum's plan with the right
predictions earns full credit.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from trainwall.challenges import answers, plans
from trainwall.challenges.grading import MissionSource, grade_file
from trainwall.challenges.mission import mission, shipped_ids
from trainwall.challenges.results import render
from trainwall.lab import charts, widgets
from trainwall.lab.launch import command
from trainwall.lab.model import MICRO_BATCHES, TRAINABLE, Lab, controls
from trainwall.optimizer.costmodel import evaluate

pytest.importorskip("marimo")


def optimum_values(m) -> dict:
    """The optimum's configuration as the workbench's control values."""
    best = answers.optimum(m).configuration
    values = {}
    for c in controls(m):
        if c.field == MICRO_BATCHES:
            t = best["training"]
            values[c.field] = t["global_batch"] // (t["data_parallel"] * t["micro_batch"])
        else:
            section, name = c.field.split(".")
            value = best[section][name]
            values[c.field] = tuple(value) if c.field == TRAINABLE else value
    return values


def locked(m) -> Lab:
    """A session on mission ``m`` with every Lock prediction locked (1): the instruments open."""
    lab = Lab.open(m)
    for q in m.lock:
        lab.lock(q.id, 1.0)
    return lab


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_the_app_shows_the_cost_models_numbers_for_the_current_plan(mission_id):
    from trainwall.lab.app import app

    _, defs = app.run(defs={"args": {}, "choice": SimpleNamespace(value=mission_id)})
    m = mission(mission_id)
    naive = evaluate(plans.written(m, m.naive))
    shown = defs["view"]["metrics"]
    assert defs["view"]["error"] is None
    assert shown.memory.total == naive.memory.total and shown.time.step_s == naive.time.step_s
    assert shown.mfu == naive.mfu


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_every_text_the_app_shows_is_told_with_the_missions_numbers(mission_id):
    """No prose placeholder ({scenario...}, {naive...}) reaches the page: the brief, the
    Lock questions, the reflection prompts and the instruments are all rendered."""
    import re

    from trainwall.lab.app import app

    m = mission(mission_id)
    outputs, defs = app.run(defs={"args": {}, "choice": SimpleNamespace(value=mission_id)})
    for q in m.lock:
        defs["lab"].lock(q.id, 1.0)
    pages = [o.text for o in outputs if getattr(o, "text", None)]
    pages.append(widgets.instruments(defs["lab"], defs["view"]))
    for page in pages:
        assert not re.search(r"\{[a-z_]+\.[a-z_.]+[^}]*\}", page), re.search(r"\{[a-z_]+\.[^}]*\}", page)[0]


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_the_optimums_plan_submitted_from_the_workbench_earns_full_credit(tmp_path, mission_id):
    m = mission(mission_id)
    lab = Lab.open(m)
    assert lab.choose(optimum_values(m))
    assert widgets.view(lab)["metrics"].to_dict() == evaluate(plans.from_configuration(
        m, answers.optimum(m).configuration)).to_dict()
    for question, key in answers.optimum(m).lock_answers.items():
        assert lab.lock(question, key) == pytest.approx(key)
    path = tmp_path / "submission.toml"
    text = widgets.submit(lab, {"1": "Because the optimizer state is three times the weights."}, str(path),
                          widgets.view(lab))
    assert "every wall holds" in text
    grade = grade_file(path, MissionSource.open(None))
    assert grade.gradable and grade.score == pytest.approx(grade.max_score)
    instructor = widgets.submit(lab, {"1": "Because the optimizer state is three times the weights."}, str(path),
                                widgets.view(lab), keys=mission_id)
    assert "Instructor mode" in instructor and render(grade, "text") in instructor
    assert grade.reflections == ((m.rendered().reflection[0], "Because the optimizer state is three times the "
                                                               "weights."),)


def test_a_lock_reveals_its_answer_only_once_locked():
    m = mission("mobile/1")
    lab = Lab.open(m)
    question = m.lock[0].id
    assert lab.answer(question) is None
    assert "Lock your predictions" in widgets.instruments(lab, widgets.view(lab))
    assert "Waterfall" not in widgets.instruments(lab, widgets.view(lab))
    revealed = lab.lock(question, 1.0)
    assert revealed == pytest.approx(m.lock_answers()[question])
    lab.lock(question, 99.0)                                    # a locked prediction stays
    assert lab.predictions[question] == 1.0
    for q in m.lock[1:]:
        lab.lock(q.id, 2.0)
    html = widgets.instruments(lab, widgets.view(lab))
    assert "Training Memory Waterfall" in html and "Walls" in html and "you said 1" in html


def test_a_prediction_that_is_not_a_number_is_said_and_not_locked():
    m = mission("mobile/1")
    lab = Lab.open(m)
    first = m.lock[0].id
    for typed in ("", "abc", "nan", "1e999"):
        widgets.apply(lab, {}, {first: typed})
        assert first not in lab.predictions
    assert "&#x27;1e999&#x27; is not a number" in widgets.instruments(lab, widgets.view(lab))
    widgets.apply(lab, {}, {first: " 1,024 "})
    assert lab.predictions[first] == 1024.0 and not lab.unreadable
    widgets.apply(lab, {}, {first: "7"})                           # a locked prediction stays
    assert lab.predictions[first] == 1024.0


def test_every_change_is_one_move_and_the_log_ends_at_the_plan(tmp_path):
    m = mission("cloud/2")
    lab = Lab.open(m)
    assert not lab.choose(dict(lab.values))                     # nothing changed: no move
    assert lab.choose({"data.workers": 40}) and lab.choose({"data.workers": 60, "data.augmentation_on": "cpu"})
    assert [move.changes for move in lab.moves] == [{"data.workers": 40}, {"data.workers": 60}]
    path = tmp_path / "s.toml"
    path.write_text(lab.submission())
    grade = grade_file(path, MissionSource.open(None))
    assert grade.gradable and not any("move log" in line and "inconsistent" in line for line in grade.feedback)


def test_a_long_session_keeps_bounded_memory_and_a_gradable_log(tmp_path):
    """Thousands of moves: the session's memory does not grow with them, and the submission
    still fits the format (at most MAX_MOVES moves) and says the same to the grader: where
    the balance point was first reached and where the search ended."""
    import gc
    import tracemalloc

    from trainwall.challenges.submission import MAX_MOVES

    m = mission("cloud/2")
    lab = Lab.open(m)
    lab.choose(optimum_values(m))                                 # the balance point at move 1
    for q in m.lock:
        lab.lock(q.id, 1.0)

    def explore(moves: int) -> None:
        for i in range(moves):
            widgets.apply(lab, {"data.workers": 1 + i % 10}, {})
            widgets.instruments(lab, widgets.view(lab))

    explore(100)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    explore(1000)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 50_000, f"{grown} bytes more after 1,000 moves"
    lab.choose({"data.workers": 57})
    assert lab.move_count == 1102 and len(lab.move_log()) == MAX_MOVES
    path = tmp_path / "long.toml"
    path.write_text(lab.submission())
    grade = grade_file(path, MissionSource.open(None))
    assert grade.gradable and grade.moves_to_balance == 1
    assert tomllib.loads(path.read_text())["configuration"]["data"]["workers"] == 57


def test_the_balance_point_shows_only_where_the_plan_stands_on_it():
    m = mission("edge/2")
    lab = locked(m)
    best = optimum_values(m)["data.workers"]
    lab.choose({"data.workers": best})
    assert "Balance point reached" in widgets.instruments(lab, widgets.view(lab))
    if best + 1 <= m.decisions["data.workers"].max:
        lab.choose({"data.workers": best + 1})
        assert "Balance point reached" not in widgets.instruments(lab, widgets.view(lab))


@pytest.mark.parametrize("mission_id", [i for i in shipped_ids() if mission(i).part == 3])
def test_the_scaling_plot_draws_the_figures_sweeps_the_target_and_the_allowed_region(mission_id):
    import re

    from trainwall.figures import scaling

    m = mission(mission_id)
    lab = locked(m)
    shown = widgets.view(lab)
    html = widgets.instruments(lab, shown)
    series = scaling(shown["config"], max_devices=m.limits.devices)
    labels = re.findall(r'aria-label="([^"]*)"', html)
    assert len(labels) == 2
    assert labels[0] == "MFU against accelerators: " + "; ".join(
        f"{d:,}: {v:.1%}" for d, v in zip(series.devices, series.mfu))
    assert labels[1] == "MFU against the global batch: " + "; ".join(
        f"{b:,}: {v:.1%}" for b, v in zip(series.global_batch, series.mfu_by_batch))
    if m.objective.target is None:                              # a cost mission: no MFU target to draw
        assert ">target" not in html
    else:
        assert html.count(f">target {m.objective.target:.0%}</text>") == 2
    assert html.count('fill="#999" fill-opacity=".2"') == 2      # the allowed region, once per panel
    assert ('r="6" fill="none"' in html) == (shown["config"].system.devices in series.devices)


@pytest.mark.parametrize("mission_id", [i for i in shipped_ids() if mission(i).select_layers])
def test_the_last_n_shortcut_trains_what_last_n_trains_in_a_configuration(mission_id):
    from trainwall.lab.app import app
    from trainwall.lab.model import last_layer_shortcuts

    m = mission(mission_id)
    shortcuts = last_layer_shortcuts(m)
    assert len(set(shortcuts.values())) == len(shortcuts)          # each entry a different selection
    label, layers = list(shortcuts.items())[len(shortcuts) // 2]
    n = label.split()[0]                                               # "last:N"
    _, defs = app.run(defs={"args": {}, "choice": SimpleNamespace(value=mission_id),
                            "last": SimpleNamespace(value=layers)})
    lab, shown = defs["lab"], defs["view"]
    assert lab.values[TRAINABLE] == layers and len(lab.moves) == 1
    expected = evaluate(plans.written(m, {**m.naive, "training": {**m.naive.get("training", {}), "trainable": n}}))
    assert shown["metrics"].memory.trainable_params == expected.memory.trainable_params
    assert shown["metrics"].memory.total == expected.memory.total


def test_the_bytes_per_parameter_view_shows_what_the_lock_asks():
    from trainwall.challenges.quantities import QUANTITIES

    m = mission("mobile/1")
    lab = locked(m)
    shown = widgets.view(lab)
    html = widgets.instruments(lab, shown)
    hidden = QUANTITIES["hidden_state_over_weights"][1](shown["metrics"])
    assert "Bytes per parameter" in html and f"together are {hidden:.2g}x the weights" in html
    assert f'{shown["metrics"].memory.bytes_per_param()["total"]:.3g} B' in html


@pytest.mark.parametrize("mission_id", [i for i in shipped_ids() if mission(i).part == 2])
def test_the_lever_curve_shows_the_settings_tried_and_no_other(mission_id):
    import re

    from trainwall.figures import lever_point

    m = mission(mission_id)
    field, allowed = m.integer_decision
    lab = locked(m)
    start = lab.values[field]
    tried = sorted({start, min(start + 2, allowed.max), allowed.max})
    for value in tried[1:] + [tried[1]]:
        lab.choose({field: value})
    shown = widgets.view(lab)
    label = re.findall(r'aria-label="([^"]*)"', widgets.instruments(lab, shown))[-1]
    plotted = [int(p.split(":")[0].replace(",", "")) for p in label.split(": ", 1)[1].split("; ")]
    assert plotted == tried == lab.visited(field)
    lever = field.split(".")[1]
    first = lever_point(shown["config"], lever, tried[0], m.max_data_wait)[0]
    assert label.split(": ", 1)[1].split("; ")[0] == f"{tried[0]:,}: {charts._rate(first)}"


def test_a_students_handout_opens_and_its_optimum_earns_full_credit_against_the_keys(tmp_path):
    """A generated variant, as a student gets it: the lab opens the handout (no optimum in the
    session), and the key's optimum submitted from it earns full marks in instructor mode."""
    import json

    from trainwall.challenges.variants import generate, write
    from trainwall.lab.app import app

    m = mission("tiny/1")
    write(generate(m, 7, ["ada"], jobs=1, progress=False), m, 7, tmp_path / "course")
    handout = tmp_path / "course" / "handouts" / "ada" / "mission.toml"
    key = json.loads((tmp_path / "course" / "keys" / "ada.json").read_text())
    _, defs = app.run(defs={"args": {}, "choice": SimpleNamespace(value=str(handout))})
    lab = defs["lab"]
    assert lab.mission.handout and lab.mission.variant and defs["view"]["error"] is None
    assert lab.student == "ada"                                   # from the submission.toml beside it
    alone = tmp_path / "alone" / "mission.toml"
    alone.parent.mkdir()
    alone.write_bytes(handout.read_bytes())
    stray = widgets.open_lab(str(alone))
    assert stray.student is None and "names no student" in widgets.submit(stray, {}, str(tmp_path / "x.toml"),
                                                                          widgets.view(stray))
    best = key["optimum"]["configuration"]
    values = {c.field: (tuple(best["training"]["trainable"]) if c.field == TRAINABLE
                        else best[c.field.split(".")[0]][c.field.split(".")[1]]) for c in controls(lab.mission)}
    lab.choose(values)
    for question, answer in key["optimum"]["lock_answers"].items():
        lab.lock(question, answer)
    said = widgets.submit(lab, {}, str(tmp_path / "ada.toml"), widgets.view(lab), keys=str(tmp_path / "course"))
    grade = grade_file(tmp_path / "ada.toml", MissionSource.open(str(tmp_path / "course")))
    assert grade.gradable and grade.score == pytest.approx(grade.max_score) and "Instructor mode" in said


EXAMPLES = sorted(str(p) for p in (Path(__file__).parent.parent / "examples").glob("*.toml"))


@pytest.mark.parametrize("part", (1, 2, 3))
@pytest.mark.parametrize("path", EXAMPLES)
def test_a_configuration_opens_in_a_sandbox_at_its_own_numbers(path, part):
    from trainwall.core.config import load_config
    from trainwall.lab.app import app
    from trainwall.lab.sandbox import references

    reference = list(references(path).values())[part - 1]
    _, defs = app.run(defs={"args": {}, "choice": SimpleNamespace(value=reference)})
    lab, shown = defs["lab"], defs["view"]
    want = evaluate(load_config(path))
    assert shown["error"] is None and lab.configuration == path and not lab.mission.lock
    assert shown["metrics"].to_dict() == want.to_dict()
    assert "Lock your predictions (" not in widgets.instruments(lab, shown)   # nothing to lock: shown at once


def test_a_sandbox_offers_the_layouts_the_plan_builder_allows_and_only_parts_that_open(tmp_path):
    """Part 3's degrees set the device count, so the cloud sandbox offers cloud/3's layouts (not
    only the file's own); a configuration without data-loader workers has no part 2 to open."""
    import tomllib

    import tomli_w

    from trainwall.lab.sandbox import references, sandbox

    cloud = next(p for p in EXAMPLES if p.endswith("cloud.toml"))
    offered, shipped = sandbox(cloud, 3).decisions, mission("cloud/3").decisions
    for name in ("training.tensor_parallel", "training.pipeline_parallel", "training.data_parallel"):
        assert set(offered[name]) == set(shipped[name]), name
    raw = tomllib.loads(Path(cloud).read_text())
    raw["data"]["workers"] = 0
    (tmp_path / "w0.toml").write_text(tomli_w.dumps(raw))
    assert [label.split("part ")[1][0] for label in references(str(tmp_path / "w0.toml"))] == ["1", "3"]


def test_a_sandbox_saves_the_configuration_its_controls_describe(tmp_path):
    from trainwall.core.config import load_config
    from trainwall.lab.sandbox import sandbox

    path = next(p for p in EXAMPLES if p.endswith("mobile.toml"))
    lab = Lab.open(sandbox(path, 1), configuration=path)
    assert lab.choose({"training.optimizer": "sgd"})
    out = tmp_path / "configuration.toml"
    said = widgets.submit(lab, {}, str(out), widgets.view(lab))
    assert "nothing graded" in said and "trainwall evaluate" in said
    saved = load_config(out)
    assert saved.training.optimizer == "sgd"
    assert evaluate(saved).to_dict() == lab.metrics().to_dict()
    cloud = next(p for p in EXAMPLES if p.endswith("cloud.toml"))
    wide = Lab.open(sandbox(cloud, 3), configuration=cloud)
    wide.choose({"training.pipeline_parallel": 32, "training.data_parallel": 256})   # 65,536 GPUs: not a plan
    assert "not a plan yet" in widgets.submit(wide, {}, str(tmp_path / "wide.toml"), widgets.view(wide))


def test_lab_refuses_keys_for_a_configuration_and_an_accelerator_no_track_runs_on(tmp_path, capsys):
    from trainwall.cli import main

    assert main(["lab", EXAMPLES[0], "--keys", "cloud/1", "--no-browser"]) == 2
    assert "sandbox" in capsys.readouterr().err
    odd = tmp_path / "a100.toml"
    odd.write_text(Path(EXAMPLES[0]).read_text().replace('"h100-sxm"', '"a100-sxm-80gb"'))
    assert main(["lab", str(odd), "--no-browser"]) == 2
    assert "system.accelerator" in capsys.readouterr().err


def test_the_workbench_shows_the_plans_time_and_money_to_train():
    m = mission("cloud/3")
    lab = locked(m)
    shown = widgets.view(lab)
    run = shown["metrics"].training
    html = widgets.instruments(lab, shown)
    assert "Time and money to train" in html and f"{run.days:,.1f} days" in html and f"${run.dollars:,.0f}" in html
    edge = locked(mission("edge/1"))                              # a workload without a budget: no panel
    assert "Time and money to train" not in widgets.instruments(edge, widgets.view(edge))


def test_a_combination_that_is_no_plan_is_said_not_raised():
    m = mission("cloud/3")
    lab = Lab.open(m)
    for q in m.lock:
        lab.lock(q.id, 0.5)
    lab.choose({"training.tensor_parallel": 2, "training.pipeline_parallel": 1, "training.data_parallel": 4})
    shown = widgets.view(lab)
    assert shown["metrics"] is None and "devices" in shown["error"]      # 2 x 1 x 4 = 8 GPUs, under the floor
    assert "Not a plan" in widgets.instruments(lab, shown)


def test_controls_keep_numbers_as_numbers():
    for mission_id in shipped_ids():
        for c in controls(mission(mission_id)):
            assert all(not isinstance(v, str) for v in c.options) or all(isinstance(v, str) for v in c.options)
    micro = next(c for c in controls(mission("edge/1")) if c.field == "training.micro_batch")
    assert micro.options == (16, 32, 64, 128, 256, 512)


def test_the_server_listens_on_localhost_and_opens_no_browser_when_asked():
    line = command("mobile/1", "out.toml", 8123, browser=False)
    assert line[line.index("--host") + 1] == "127.0.0.1" and "--headless" in line
    assert line[line.index("--") + 1:] == ["--out", "out.toml", "--mission", "mobile/1"]
    assert "--headless" not in command(None, "out.toml", 8123, browser=True)


def test_lab_refuses_an_unknown_mission_and_an_out_over_its_input(tmp_path, capsys):
    from trainwall.challenges.mission import _shipped_path
    from trainwall.cli import main

    assert main(["lab", "cloud/9", "--no-browser"]) == 2
    handout = tmp_path / "mission.toml"
    handout.write_text(_shipped_path("tiny/1").read_text())
    assert main(["lab", str(handout), "--out", str(handout), "--no-browser"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["lab", "tiny/1", "--keys", str(tmp_path / "no-keys"), "--no-browser"]) == 2
    assert "no-keys" in capsys.readouterr().err


def test_a_student_workbench_has_no_keys_and_an_instructors_passes_them_on():
    student = command("tiny/1", "submission.toml", 8000, browser=False)
    assert "--keys" not in student
    instructor = command("tiny/1", "submission.toml", 8000, browser=False, keys="course/keys")
    assert instructor[instructor.index("--keys") + 1] == "course/keys"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_lab(folder, *args: str, mission_id: str = "mobile/1"):
    """``trainwall lab MISSION --no-browser`` started as a student starts it; yields its port
    once it listens, and stops it (SIGTERM) afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "trainwall.cli", "lab", mission_id, "--no-browser",
                                "--port", str(port), *args], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 60
        while not _listening(port):
            assert process.poll() is None and time.monotonic() < end, "the workbench did not start listening"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_stopping_trainwall_lab_stops_its_server(tmp_path):
    """The command becomes the server: a terminated `trainwall lab` leaves no marimo behind."""
    with running_lab(tmp_path) as port:
        assert _listening(port)
    end = time.monotonic() + 10
    while _listening(port) and time.monotonic() < end:
        time.sleep(0.2)
    assert not _listening(port)
