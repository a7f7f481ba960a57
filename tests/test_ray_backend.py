"""``--backend ray`` (issue 18): `generate` and `grade` on a local Ray cluster the test starts
(two CPUs) write the bytes the local process pool writes; Ray is imported only when asked, and
an installation without it says which extra to install.

Skipped only where Ray is not installed or cannot start here (the test extras install it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_class_streaming import SUBMISSION, _tree


@pytest.fixture(scope="module")
def ray_starts():
    """Ray is installed and a local instance starts here; it is stopped again (each command
    starts its own)."""
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - any failure to start is "cannot start here"
        pytest.skip(f"Ray cannot start here: {exc}")
    ray.shutdown()


def _class_folder(folder: Path) -> Path:
    """A class of mobile/1 submissions, with what a class holds besides: a malformed file, a
    binary one, one over the size limit, one of an unknown type and a student of another mission."""
    folder.mkdir()
    for n in range(23):
        (folder / f"s{n:06d}.toml").write_text(SUBMISSION.format(
            n=n, optimizer=("sgd", "adam")[n % 2], recompute=("none", "full")[n // 2 % 2], layers=1 + n % 7))
    (folder / "broken.toml").write_text("{not toml")
    (folder / "binary.json").write_bytes(b"\x00\x01\x02")
    (folder / "huge.json").write_bytes(b" " * 1_000_001)
    (folder / "notes.txt").write_text("not a submission")
    (folder / "other.json").write_text(json.dumps({"mission": "tiny/1", "student": "t1", "configuration": {}}))
    return folder


def test_a_class_graded_on_ray_is_the_bytes_of_the_local_pool(ray_starts, tmp_path, capsys):
    from trainwall.cli import main

    folder = _class_folder(tmp_path / "class")
    roster = tmp_path / "roster.csv"
    roster.write_text("student\n" + "".join(f"s{n:06d}\n" for n in range(0, 30, 2)))
    common = ["grade", str(folder), "--format", "gradescope", "--roster", str(roster)]
    assert main([*common, "--output", str(tmp_path / "local"), "--jobs", "2"]) == 0
    assert main([*common, "--output", str(tmp_path / "ray"), "--jobs", "2", "--backend", "ray"]) == 0
    local, remote = _tree(tmp_path / "local"), _tree(tmp_path / "ray")
    assert len([n for n in local if n.endswith(".json") and "/" not in n]) == 28
    assert remote == local


def test_variants_generated_on_ray_are_the_bytes_of_the_local_pool(ray_starts, tmp_path):
    """A cloud/3 roster (the part-3 MILP, each actor warm across its draws) and a mobile/2 one;
    then the mobile/2 variants' submissions graded against their answer keys on Ray."""
    from trainwall.cli import main

    for mission, count in (("cloud/3", 3), ("mobile/2", 4)):
        args = ["generate", mission, "--count", str(count), "--seed", "11"]
        name = mission.replace("/", "-")
        assert main([*args, "--out", str(tmp_path / f"{name}-local"), "--jobs", "1"]) == 0
        assert main([*args, "--out", str(tmp_path / f"{name}-ray"), "--jobs", "2", "--backend", "ray"]) == 0
        assert _tree(tmp_path / f"{name}-ray") == _tree(tmp_path / f"{name}-local")
    handouts = tmp_path / "mobile-2-local" / "handouts"
    folder = tmp_path / "submissions"
    folder.mkdir()
    for student in sorted(p.name for p in handouts.iterdir()):
        (folder / f"{student}.toml").write_bytes((handouts / student / "submission.toml").read_bytes())
    keys = tmp_path / "mobile-2-local" / "keys"
    common = ["grade", str(folder), "--mission", str(keys), "--format", "json"]
    assert main([*common, "--output", str(tmp_path / "graded-local"), "--jobs", "1"]) in (0, 2)
    assert main([*common, "--output", str(tmp_path / "graded-ray"), "--backend", "ray", "--jobs", "2"]) in (0, 2)
    assert _tree(tmp_path / "graded-ray") == _tree(tmp_path / "graded-local")


def test_without_ray_the_error_names_the_extra(monkeypatch):
    from trainwall.challenges import ray_backend
    from trainwall.core.errors import InputError

    monkeypatch.setitem(sys.modules, "ray", None)       # "import ray" raises ImportError
    with pytest.raises(InputError, match=r"pip install 'trainwall\[ray\]'"):
        ray_backend.RayPool(object, ())


@pytest.mark.parametrize("argv, message", [
    (["--ray-address", "localhost:6379"], "--ray-address names the cluster of --backend ray"),
    (["--backend", "ray", "--ray-address", " "], "--ray-address must name a Ray cluster"),
])
def test_ray_options_are_checked_before_any_work(tmp_path, capsys, argv, message):
    from trainwall.cli import main

    assert main(["generate", "mobile/2", "--count", "1", "--seed", "1", "--out", str(tmp_path / "v"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "v" / "keys").exists()


def test_a_cluster_that_does_not_answer_is_a_clear_error_at_once(tmp_path, capsys):
    """Ray retries an unreachable head for minutes; the CLI says so within its connect timeout.
    A port nothing listens on (bound and released here) refuses at once."""
    import socket

    pytest.importorskip("ray")
    from trainwall.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["generate", "mobile/2", "--count", "1", "--seed", "1", "--out", str(tmp_path / "v"),
                 "--backend", "ray", "--ray-address", f"127.0.0.1:{port}"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--ray-address = '127.0.0.1:{port}'" in err and "ray start --head" in err
    assert not (tmp_path / "v" / "keys").exists()


def test_the_local_backend_never_imports_ray(tmp_path):
    """The default backend runs without Ray: not one Ray module is loaded by generate or grade."""
    script = ("import sys\nfrom trainwall.cli import main\n"
              f"main(['generate', 'mobile/2', '--count', '1', '--seed', '1', '--out', {str(tmp_path / 'v')!r}, "
              "'--jobs', '1'])\n"
              f"main(['grade', {str(tmp_path / 'v' / 'handouts')!r}, '--output', {str(tmp_path / 'g')!r}, "
              "'--jobs', '1'])\n"
              "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
