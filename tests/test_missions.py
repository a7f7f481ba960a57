"""Missions and the part-1 optimiser: the MILP against exhaustive enumeration.

Every shipped mission and 240 seeded random instances (small networks, random budgets,
decisions, objectives; some infeasible, some with tied optima) must give the same
status, objective, mode and layer selection from the MILP (HiGHS) as from the numpy
enumeration of the same cost model; and the optimum, evaluated by the cost model,
must fit.
"""

import json
import random
import subprocess
import sys

import pytest

from trainwall.challenges import plans
from trainwall.challenges.mission import mission, parse_mission, shipped_ids
from trainwall.challenges.problems import scaling_problem, state_audit_problem
from trainwall.challenges.solve import solve
from trainwall.core.config import parse_config
from trainwall.optimizer import certify
from trainwall.optimizer.costmodel import evaluate
from trainwall.optimizer.highs import Status
from trainwall.optimizer.state_audit import StateAuditModel


def milp_and_enumeration(m):
    problem = state_audit_problem(m)
    return StateAuditModel(problem).solve(), certify.state_audit(problem), problem.tables


def same_optimum(sol, certificate) -> bool:
    """Assert the MILP and the certifier agree: both infeasible, or the same objective,
    mode and layers. Returns whether the instance is feasible."""
    if not certificate.feasible:
        assert sol.status is Status.INFEASIBLE
        return False
    assert sol.status is Status.OPTIMAL
    assert (sol.objective, sol.mode, sol.mask) == (certificate.objective, certificate.mode, certificate.mask)
    return True


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_shipped_mission_is_certified_and_a_real_exercise(mission_id):
    m = mission(mission_id)
    result = solve(m)
    assert result.status is Status.OPTIMAL
    assert result.certified, result.certification
    assert not m.violations(result.metrics)
    assert m.wall in result.binding  # the track's wall binds at the optimum
    naive = evaluate(plans.written(m, m.naive))
    assert m.violations(naive)  # the first thing a student tries breaks a wall


SMALL = [("micro-speech", "stm32f746"), ("ds-cnn-s", "nrf52840"), ("ds-cnn-s", "stm32h743"),
         ("orin-perception", "jetson-agx-orin-64gb"), ("resnet-18", "ar-glasses-soc")]
PRECISIONS = {"stm32f746": ["fp32"], "nrf52840": ["fp32"], "stm32h743": ["fp32"],
              "jetson-agx-orin-64gb": ["fp32", "fp16-mixed"], "ar-glasses-soc": ["fp32", "fp16-mixed"]}


def random_mission(seed: int):
    rng = random.Random(seed)
    model, device = rng.choice(SMALL)
    mb = rng.choice([1, 2, 4, 8, 16, 32])
    full = evaluate(parse_config({"workload": {"model": model}, "system": {"accelerator": device, "devices": 1},
                                  "training": {"optimizer": "adam", "precision": "fp32", "micro_batch": mb,
                                               "global_batch": mb}}, "probe"))
    # budgets from hopeless to roomy, around what fp32 Adam on everything needs
    budget = int(full.memory.total * rng.choice([0.05, 0.3, 0.5, 0.7, 0.9, 1.2]))
    decisions = {"training.optimizer": rng.sample(["adam", "momentum", "sgd"], rng.randint(1, 3)),
                 "training.precision": rng.sample(PRECISIONS[device], rng.randint(1, len(PRECISIONS[device]))),
                 # CNNs have no attention core: "selective" saves what "none" saves - a tie
                 "training.recompute": rng.sample(["none", "selective", "full"], rng.randint(1, 3))}
    quantity = rng.choice(["trainable_params", "trainable_params", "micro_batch"])
    if quantity == "micro_batch":
        decisions["training.micro_batch"] = sorted(rng.sample([1, 2, 4, 8, 16, 32, 64], 3))
    data = {
        "id": "mobile/1", "track": "mobile", "part": 1, "title": f"random {seed}", "story": "",
        "select_layers": quantity == "trainable_params" or rng.random() < 0.5,
        "constraints": ["memory", "flash", "stability"], "wall": "memory",
        "scenario": {"workload": {"model": model},
                     "system": {"accelerator": device, "devices": 1, "memory_budget": max(budget, 1)},
                     "training": {"optimizer": "adam", "precision": "fp32", "micro_batch": mb, "global_batch": 64,
                                  "loss_scaling": "dynamic", "gradient_clipping": True, "trainable": "last:1"},
                     "data": {"workers": 1, "augmentation": "none"}},
        "decisions": decisions,
        "objective": {"quantity": quantity, "sense": rng.choice(["maximize", "maximize", "minimize"])},
        "naive": {"training": {"optimizer": "adam"}},
    }
    return parse_mission(data, f"random {seed}")


@pytest.mark.parametrize("seed", range(240))
def test_milp_equals_enumeration_on_random_instances(seed):
    m = random_mission(seed)
    sol, ex, tables = milp_and_enumeration(m)
    assert ex.method == "enumeration"
    if not same_optimum(sol, ex):
        return
    assert sol.memory_fraction == pytest.approx(ex.memory_fraction, rel=1e-12)
    # the optimum, evaluated by the cost model itself, fits where the MILP said it does
    table = tables[sol.mode]
    choices = dict(table.choices)
    if m.select_layers:
        choices["training.trainable"] = [i for i, on in enumerate(sol.mask) if on]
    metrics = evaluate(plans.decided(m, choices))
    assert metrics.memory.total == pytest.approx(table.memory(sol.mask)[0], rel=1e-12)
    assert metrics.memory.total <= metrics.memory.capacity


def test_random_instances_cover_infeasible_and_tied_optima():
    outcomes = [milp_and_enumeration(random_mission(s)) for s in range(240)]
    assert sum(not ex.feasible for _, ex, _ in outcomes) >= 10
    # ties: a mode whose memory equals the chosen one's for the chosen layers
    ties = sum(1 for sol, ex, tables in outcomes if ex.feasible and any(
        c != ex.mode and tables[c].stable and tables[c].memory(ex.mask) == tables[ex.mode].memory(ex.mask)
        for c in range(len(tables))))
    assert ties >= 10


def test_infeasible_variant_exits_3_and_names_the_conflict(tmp_path):
    import tomllib

    from trainwall.challenges.mission import _shipped_path

    data = tomllib.loads(_shipped_path("mobile/1").read_text())
    data["scenario"]["system"]["memory_budget"] = 1_000_000  # 1 MB: not even the runtime fits
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(data))
    run = subprocess.run([sys.executable, "-m", "trainwall.cli", "solve", str(path), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] == "infeasible" and out["configuration"] is None
    assert out["conflicts"] == ["memory"]


def test_missions_command_lists_the_shipped_missions():
    run = subprocess.run([sys.executable, "-m", "trainwall.cli", "missions", "--json"], capture_output=True, text=True)
    assert run.returncode == 0
    assert [r["id"] for r in json.loads(run.stdout)] == list(shipped_ids())


def test_unknown_mission_is_bad_input():
    run = subprocess.run([sys.executable, "-m", "trainwall.cli", "solve", "mobile/9"], capture_output=True, text=True)
    assert run.returncode == 2 and "mobile/1" in run.stderr and "Traceback" not in run.stderr


def test_lock_answers_come_from_the_cost_model():
    answers = mission("mobile/1").lock_answers()
    # 4 + 4 + 4 + 4 (docs/DESIGN.md), plus Adam's 4-byte step counter per tensor (as torch.optim keeps)
    assert answers["adam_fp32_bytes_per_param"] == pytest.approx(16.0, rel=1e-3)
    assert answers["adam_fp32_hidden_over_weights"] == pytest.approx(3.0, rel=1e-3)
    assert mission("tiny/1").lock_answers()["sgd_fp32_bytes_per_param"] == 8.0  # SGD keeps no step counter
    assert 0 < answers["naive_activation_share"] < 10


def test_unknown_lock_quantity_is_bad_input():
    import tomllib

    from trainwall.challenges.mission import _shipped_path
    from trainwall.core.errors import InputError

    data = tomllib.loads(_shipped_path("tiny/1").read_text())
    data["lock"][0]["quantity"] = "bytes_per_paramm"
    with pytest.raises(InputError, match=r"lock\.0\.quantity = 'bytes_per_paramm'"):
        parse_mission(data, "variant")


def _certify_with(problem, max_enumerated: int, monkeypatch):
    monkeypatch.setattr(certify, "MAX_ENUMERATED_LAYERS", max_enumerated)
    return certify.state_audit(problem)


@pytest.mark.parametrize("seed", range(240))
def test_dynamic_programme_equals_enumeration_on_random_instances(seed, monkeypatch):
    """The Pareto DP over layers picks the selection every-2^L enumeration picks."""
    m = random_mission(seed)
    problem = state_audit_problem(m)
    everything = _certify_with(problem, 64, monkeypatch)
    dynamic = _certify_with(problem, 0, monkeypatch)
    assert everything.method == "enumeration"
    assert dynamic.method == ("dynamic programming" if m.select_layers else "enumeration")
    assert (dynamic.feasible, dynamic.mode, dynamic.mask, dynamic.objective) == \
        (everything.feasible, everything.mode, everything.mask, everything.objective)


def test_dynamic_programme_equals_enumeration_on_mobile_1(monkeypatch):
    m = mission("mobile/1")
    problem = state_audit_problem(m)
    everything = _certify_with(problem, 64, monkeypatch)   # 12 modes x 2^20 selections
    dynamic = _certify_with(problem, 0, monkeypatch)
    assert everything.configurations == dynamic.configurations == 12 * 2 ** 20
    assert (dynamic.mode, dynamic.mask, dynamic.objective) == (everything.mode, everything.mask, everything.objective)


def llama_selection(seed: int):
    """Layer selection on Llama-3-8B (34 layers: beyond enumeration) under a random budget."""
    rng = random.Random(seed)
    gib = 2 ** 30
    data = {
        "id": "cloud/1", "track": "cloud", "part": 1, "title": f"llama {seed}", "story": "",
        "select_layers": True, "constraints": ["memory", "stability"], "wall": "memory",
        "scenario": {"workload": {"model": "llama-3-8b", "seq_len": rng.choice([1024, 4096])},
                     "system": {"accelerator": "h100-sxm", "devices": 1,
                                "memory_budget": rng.choice([8, 20, 30, 45, 60, 120]) * gib},
                     "training": {"optimizer": "adam", "precision": "bf16-mixed", "micro_batch": rng.choice([1, 2]),
                                  "global_batch": 16, "trainable": "all"},
                     "data": {"workers": 1, "augmentation": "none"}},
        "decisions": {"training.optimizer": rng.sample(["adam", "momentum", "sgd"], rng.randint(1, 2)),
                      "training.optimizer_state": rng.sample(["fp32", "8bit"], rng.randint(1, 2)),
                      "training.recompute": rng.sample(["none", "full"], rng.randint(1, 2))},
        "objective": {"quantity": "trainable_params", "sense": "maximize"},
        "naive": {"training": {"optimizer": "adam"}},
    }
    return parse_mission(data, f"llama {seed}")


@pytest.mark.parametrize("seed", range(12))
def test_milp_equals_dynamic_programme_beyond_enumeration(seed):
    """2^34 selections per mode: the MILP and the DP, two independent methods, agree."""
    m = llama_selection(seed)
    sol, dp, _ = milp_and_enumeration(m)
    assert dp.method == "dynamic programming"
    same_optimum(sol, dp)


def test_identical_layers_are_ordered_only_where_no_optimum_is_lost():
    """The MILP's symmetry rows (x_l <= x_(l+1) over identical layers) exist only where moving
    training later cannot cost memory (a flowing gradient costs no less than none)."""
    from dataclasses import replace

    problem = state_audit_problem(llama_selection(0))
    assert len(StateAuditModel(problem).model.symmetry) == 31          # Llama-3-8B's 32 identical blocks
    first = problem.tables[0]
    cheaper_flow = (first.kept[1][2] + 1.0, *first.kept[1][1:])          # A^00 > A^01 in one layer
    broken = replace(first, kept=(first.kept[0], cheaper_flow, *first.kept[2:]))
    model = StateAuditModel(replace(problem, tables=(broken, *problem.tables[1:])))
    assert not hasattr(model.model, "symmetry")


def test_llama_instances_select_part_of_the_network():
    """The instances above are real knapsacks: some optima train some layers, not all or none."""
    partial = 0
    for seed in range(12):
        m = llama_selection(seed)
        dp = certify.state_audit(state_audit_problem(m))
        partial += dp.feasible and 0 < sum(dp.mask) < len(dp.mask)
    assert partial >= 4


@pytest.mark.parametrize("mission_id", ["tiny/1", "mobile/1", "tiny/3", "mobile/3"])
def test_runner_up_is_the_best_plan_in_another_mode(mission_id):
    """The runner-up `solve` reports equals the certifier's optimum with the optimum's mode removed."""
    from dataclasses import replace

    m = mission(mission_id)
    result = solve(m)
    second = result.to_dict()["runner_up"]
    if m.part == 1:
        problem = state_audit_problem(m)
        best = certify.state_audit(problem).mode
        others = tuple(replace(t, stable=False) if i == best else t for i, t in enumerate(problem.tables))
        expected = certify.state_audit(replace(problem, tables=others))
        assert second["objective"] == expected.objective
    else:
        problem, _ = scaling_problem(m)
        best = certify.scaling_wall(problem).mode
        expected = certify.scaling_wall(replace(problem, modes=problem.modes[:best] + problem.modes[best + 1:]))
        assert second["objective"] == pytest.approx(expected.objective, rel=1e-12)
    assert second["objective"] <= result.objective


@pytest.mark.parametrize("mission_id", ["tiny/1", "mobile/1", "tiny/3", "mobile/3", "edge/1"])
def test_next_best_is_the_certifiers_best_strictly_worse_plan(mission_id):
    """`next_best` equals the certifier's optimum once the optimum's mode and every mode that
    ties it are removed, one at a time (mobile/1, tiny/3 and edge/1 have ties)."""
    from dataclasses import replace

    from trainwall.challenges.solution import TIE

    m = mission(mission_id)
    result = solve(m)
    if m.part == 1:
        problem = state_audit_problem(m)
        best = certify.state_audit(problem)

        def without(removed):
            return certify.state_audit(replace(problem, tables=tuple(replace(t, stable=False) if i in removed else t
                                                                      for i, t in enumerate(problem.tables))))
    else:
        problem, _ = scaling_problem(m)
        pool = problem.modes
        best = certify.scaling_wall(problem)

        def without(removed):
            kept = tuple(md for i, md in enumerate(pool) if i not in removed)
            found = certify.scaling_wall(replace(problem, modes=kept))
            return replace(found, mode=[i for i in range(len(pool)) if i not in removed][found.mode])
    removed = {best.mode}
    while (found := without(removed)).feasible and abs(found.objective - best.objective) <= TIE * best.objective:
        removed.add(found.mode)
    nearest = result.extra["next_best"]
    assert nearest["tied_modes"] == len(removed) - 1
    assert nearest["objective"] == pytest.approx(found.objective, rel=1e-12)
    assert nearest["objective"] < result.objective


def test_unreachable_mfu_target_exits_3_and_names_it(tmp_path):
    """Part 3: a variant whose target no configuration reaches is infeasible, with mfu_target named."""
    import tomllib

    from trainwall.challenges.mission import _shipped_path

    data = tomllib.loads(_shipped_path("tiny/3").read_text())
    data["objective"]["target"] = 0.9
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(data))
    run = subprocess.run([sys.executable, "-m", "trainwall.cli", "solve", str(path), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 3, run.stderr
    out = json.loads(run.stdout)
    assert out["status"] == "infeasible" and out["configuration"] is None
    assert out["conflicts"] == ["mfu_target"]
    assert out["solver"]["certified"]


def _best_objective_by_brute_force(problem) -> float | None:
    """The best objective over every feasible (mode, selection), with no tie window and no
    feasibility tolerance at all: memory <= capacity exactly (the MILP's and the walls'
    1e-9 tolerance is not shared; a plan within it of a wall would show here as a mismatch)."""
    import numpy as np

    best = None
    for table in problem.tables:
        if "stability" in problem.walls and not table.stable:
            continue
        x = certify.selections(table.params, problem.fixed_mask)
        total, flash = certify.mode_memory(table, x)
        ok = total <= table.capacity
        if table.mcu and "flash" in problem.walls:
            ok &= flash <= table.flash_capacity
        if not ok.any():
            continue
        values = (x[ok] @ np.asarray(table.params) if problem.objective == "trainable_params"
                  else np.full(int(ok.sum()), float(table.micro_batch)))
        top = float(values.max() if problem.maximize else values.min())
        best = top if best is None else (max(best, top) if problem.maximize else min(best, top))
    return best


@pytest.mark.parametrize("seed", range(0, 240, 3))
def test_the_optimum_is_the_best_objective_of_all(seed):
    """The lexicographic stages (memory, then the tie-break) never give up objective: the
    reported optimum equals the exact best over every feasible plan. (They once held it only
    to half the smallest layer, and cloud/1's certified optimum was 4.9e7 parameters short.)"""
    problem = state_audit_problem(random_mission(seed))
    sol = StateAuditModel(problem).solve()
    best = _best_objective_by_brute_force(problem)
    assert (sol.objective if sol.status is Status.OPTIMAL else None) == best


def test_cloud_1_reports_the_primary_optimum():
    """Beyond enumeration: the reported optimum equals the MILP's primary stage alone."""
    problem = state_audit_problem(mission("cloud/1"))
    model = StateAuditModel(problem)
    reported = model.solve().objective
    assert model.lifted_optimum("stability") == reported == solve(mission("cloud/1")).objective


def test_cloud_1_trains_at_least_the_embedding_and_head_plan():
    """Issue 12: a plan training the embedding, the head and blocks 8-80 fitted (79.7 of 80 GiB)
    and beat the old "certified" optimum by 0.6 %. The optimum trains at least as much as every
    such plan that fits, the embedding and head with the blocks from any k on (since the loss's
    fp32 gradients are counted, the first that fits starts at block 9: 79.4 GiB)."""
    m = mission("cloud/1")
    layers = len(state_audit_problem(m).tables[0].params)
    rivals = [evaluate(plans.decided(m, {**mode, "training.trainable": [0, *range(k, layers)]}))
              for mode in m.modes() for k in range(6, 14)]
    fitting = [r.memory.trainable_params for r in rivals if r.feasible]
    assert fitting and solve(m).objective >= max(fitting)


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_a_lock_without_settings_asks_about_the_plan_the_story_calls_current(mission_id):
    """A Lock without ``at`` is answered at the scenario, while the story and the student's
    starting point are the naive plan: where the two differ, every Lock must say its
    settings (cloud/3's Locks once described a 2,048-sequence scenario while its story's
    current configuration trained 128)."""
    m = mission(mission_id)
    if plans.written(m) != plans.written(m, m.naive):
        assert all(q.at for q in m.lock), [q.id for q in m.lock if not q.at]
