"""The CLI contract: exit codes, JSON keys, one-line errors for every kind of bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainwall.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(*args):
    return subprocess.run([sys.executable, "-m", "trainwall.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("track", ["cloud", "edge", "mobile", "tiny"])
def test_examples_evaluate(track):
    r = run("evaluate", EXAMPLES / f"{track}.toml", "--json")
    assert r.returncode in (0, 3), r.stderr
    out = json.loads(r.stdout)
    for key in ["feasible", "violations", "memory", "time", "flops", "mfu", "hfu", "throughput", "comm_to_compute",
                "scaling_efficiency", "network_utilization", "pipeline", "stable"]:
        assert key in out
    for key in ["weights", "gradients", "optimizer_state", "activations", "other", "total", "capacity"]:
        assert key in out["memory"]
    assert out["memory"]["total"] == pytest.approx(sum(out["memory"][k] for k in
                                                       ["weights", "gradients", "optimizer_state", "activations", "other"]))


def test_text_waterfall_shows_the_lock_answer():
    r = run("evaluate", EXAMPLES / "mobile.toml")
    assert "16.00 bytes/param" in r.stdout and "4.0x the weights" in r.stdout and "MiB" in r.stdout


BAD = {
    "negative.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="h100-sxm"\n[training]\nmicro_batch=-4\n',
                      "training.micro_batch = -4"),
    "typo.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="h100-sxm"\n[training]\nmicrobatch=4\n',
                  "did you mean 'micro_batch'"),
    "model.toml": ('[workload]\nmodel="llama-3-7b"\n[system]\naccelerator="h100-sxm"\n', "did you mean 'llama-3-"),
    "device.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="h100"\n', "did you mean 'h100-sxm'"),
    "link.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="h100-sxm"\ndevices=16\ninter_node_link="ib-nd"\n',
                  "system.inter_node_link"),
    "degrees.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="h100-sxm"\ndevices=8\n[training]\n'
                     'tensor_parallel=4\ndata_parallel=4\n', "must equal system.devices = 8"),
    "batch.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="h100-sxm"\ndevices=8\n[training]\n'
                   'micro_batch=2\nglobal_batch=20\n', "training.global_batch = 20"),
    "missing.toml": ('[workload]\nmodel="gpt-2"\n', "system"),
    "nan.json": ('{"workload": {"model": "gpt-2"}, "system": {"accelerator": "h100-sxm", '
                 '"background_network_load": NaN}}', "finite"),
    "type.yaml": ("workload: {model: gpt-2}\nsystem: {accelerator: h100-sxm, devices: eight}\n", "system.devices"),
    "empty.toml": ("", "empty"),
    "bomb.yaml": ('a: &a ["x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n'
                  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n', "aliases are not allowed"),
    "fp8.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="a100-sxm-80gb"\n[training]\nprecision="fp8-mixed"\n',
                 "no fp8 peak"),
    "tp.toml": ('[workload]\nmodel="gpt-2"\n[system]\naccelerator="h100-sxm"\ndevices=8\n[training]\ntensor_parallel=8\n',
                "training.tensor_parallel = 8"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_exit_2(tmp_path, name):
    text, expected = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    r = run("evaluate", path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert expected in r.stderr and name in r.stderr


def test_binary_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_bytes(b"\x00\x01\x02garbage")
    r = run("evaluate", path)
    assert r.returncode == 2 and "binary" in r.stderr


def test_infeasible_exits_3(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text('[workload]\nmodel="llama-3-70b"\n[system]\naccelerator="h100-sxm"\n'
                    '[training]\nprecision="fp32"\n')
    r = run("evaluate", path, "--json")
    assert r.returncode == 3
    assert json.loads(r.stdout)["violations"][0]["constraint"] == "memory"


@pytest.mark.parametrize("command", [["missions"], ["evaluate", "examples/cloud.toml", "--json"],
                                     ["schema", "config"]])
def test_a_closed_pipe_ends_quietly(command):
    """`trainwall ... | head`: the reader leaves before the output is written (``true`` exits at
    once, long before Python has started); no traceback, no 'internal error', SIGPIPE's status."""
    import shlex

    line = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "trainwall.cli", *command])
    run = subprocess.run(["bash", "-c", f"{line} | true; echo ${{PIPESTATUS[0]}}"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.stderr == ""
    assert run.stdout.strip() == "141"


@pytest.mark.parametrize("mission_id", ["cloud/1", "cloud/2", "cloud/3", "edge/1", "edge/2", "edge/3", "mobile/1",
                                        "mobile/2", "mobile/3", "tiny/1", "tiny/2", "tiny/3"])
def test_start_writes_one_file_that_evaluate_and_grade_both_read(tmp_path, mission_id):
    """Issue 14: a student keeps one file. `start` writes the mission's current plan as a
    submission; `evaluate` reads the plan it describes (as the naive plan evaluates), `grade`
    grades it."""
    import json as _json

    from trainwall.challenges import plans
    from trainwall.challenges.mission import mission
    from trainwall.optimizer.costmodel import evaluate

    path = tmp_path / "submission.toml"
    assert main(["start", mission_id, "-o", str(path), "--student", "me"]) == 0
    naive = evaluate(plans.written(mission(mission_id), mission(mission_id).naive)).to_dict()
    from trainwall.api import evaluate_file

    _, metrics = evaluate_file(path)
    assert _json.dumps(metrics.to_dict(), sort_keys=True) == _json.dumps(naive, sort_keys=True)
    assert main(["grade", str(path), "--format", "json", "--output", str(tmp_path / "r.json")]) == 0


def test_start_never_overwrites_and_a_variant_needs_its_mission_file(tmp_path, capsys):
    path = tmp_path / "submission.toml"
    path.write_text("mine")
    assert main(["start", "cloud/2", "-o", str(path)]) == 2 and path.read_text() == "mine"
    assert "already exists" in capsys.readouterr().err
    assert main(["start", "cloud/2", "-o", str(path), "--force"]) == 0 and "cloud/2" in path.read_text()
    variant = tmp_path / "variant.toml"
    variant.write_text(path.read_text().replace('"cloud/2"', '"cloud/2@abc"'))
    assert main(["evaluate", str(variant)]) == 2
    assert "--mission" in capsys.readouterr().err


@pytest.mark.parametrize("mission_id", ["cloud/1", "cloud/2", "cloud/3", "edge/1", "edge/2", "edge/3", "mobile/1",
                                        "mobile/2", "mobile/3", "tiny/1", "tiny/2", "tiny/3"])
def test_solve_prints_its_text_report_for_every_mission(mission_id, capsys):
    """The text report, not only --json (cloud/2's report once failed on a data field its
    scenario leaves at the default)."""
    assert main(["solve", mission_id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{mission_id}: ") and "status: optimal" in out and "solver: HiGHS" in out
