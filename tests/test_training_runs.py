"""The cost model against published training runs (tests/reference/training_runs.toml).

Like with like: HFU where the source counts recompute (Megatron-LM Table 1), MFU where
it does not (PaLM, MPT). The calibration constant is one per device (its sustained
``gemm_efficiency``), fitted on that device's runs; the fit is checked in sample and
leave-one-run-out, so the model is also judged on runs it was not tuned on.
"""

from pathlib import Path

import pytest

from trainwall.calibration import MECHANISMS, compare, decomposition, fit_gemm_efficiency, leave_one_out, load_runs
from trainwall.hardware.catalog import device

RUNS = Path(__file__).resolve().parent / "reference" / "training_runs.toml"


@pytest.fixture(scope="module")
def rows():
    return compare(RUNS)


def test_every_published_run_is_compared(rows):
    assert [r.name for r in rows] == [run["name"] for run in load_runs(RUNS)]
    assert {r.metric for r in rows if r.name.startswith("megatron")} == {"hfu"}
    assert {r.metric for r in rows if not r.name.startswith("megatron")} == {"mfu"}


def test_architectures_give_the_published_parameter_counts(rows):
    # The sources print 2-4 significant figures (1.7B is 1.65B from the shapes).
    for r in rows:
        assert r.params_ours == pytest.approx(r.params_published, rel=0.03), r.name


def test_mean_absolute_error_at_most_2_5_points_and_no_run_off_by_8(rows):
    """Issue 17's goal in sample (0.025; 0.021 with the interleaved schedule, per-NIC rings and
    NCCL's achievable bandwidths). The worst run is MPT-7B on A100 (-0.064), whose 64 % MFU is
    above what the A100's one constant, shared with the ten Megatron-LM runs, gives."""
    errors = [abs(r.error) for r in rows]
    assert sum(errors) / len(errors) <= 0.025
    assert max(errors) <= 0.08, max(rows, key=lambda r: abs(r.error))


@pytest.mark.parametrize("accelerator", ["a100-sxm-80gb", "h100-sxm", "tpu-v4"])
def test_catalog_constant_is_the_fit(accelerator):
    """devices.toml holds what the fit gives: nobody tunes the catalog by hand."""
    runs = [r for r in load_runs(RUNS) if r["accelerator"] == accelerator]
    assert device(accelerator).gemm_efficiency == fit_gemm_efficiency(runs)


def test_generalises_to_runs_left_out_of_the_fit():
    errors = [abs(err) for _, _, err in leave_one_out(RUNS)]
    assert len(errors) == 13  # every run but PaLM, the only TPU run
    # Out of sample the MAE is 0.029 (bench/compare_training_runs.py); issue 17's goal.
    assert sum(errors) / len(errors) <= 0.035


def test_each_runs_step_splits_into_its_mechanisms():
    """bench/compare_training_runs.py's decomposition: every mechanism's share is a part of
    the step (none negative) and together they are the step; a run without pipeline
    parallelism has no bubble, one without tensor parallelism no tensor-parallel traffic."""
    runs = {run["name"]: run for run in load_runs(RUNS)}
    for name, step, shares in decomposition(RUNS):
        assert set(shares) == set(MECHANISMS) and step > 0
        assert all(share >= -1e-12 for share in shares.values()), (name, shares)
        assert sum(shares.values()) == pytest.approx(1.0, rel=1e-9), name
        parallel = runs[name]["parallel"]
        if parallel.get("pp", 1) == 1:
            assert shares["bubble"] == 0.0, name
        if parallel.get("tp", 1) == 1:
            assert shares["exposed_tp"] == 0.0, name


def test_every_run_states_its_mechanisms_and_is_replayed_with_them():
    """The reference file says, per run, the schedule, virtual stages, context parallelism and
    attention kernel (published or marked assumed), and the replayed configuration carries
    exactly them. Megatron's interleaving needs the micro-batches per step to be a multiple
    of the stages: every pipelined Table 1 run's published batch and parallelism give one."""
    from trainwall.calibration import run_config

    for run in load_runs(RUNS):
        mech, training = run["mechanisms"], run_config(run)["training"]
        assert mech["note"] and training["attention"] == mech["attention"], run["name"]
        assert training.get("virtual_stages", 1) == mech["virtual_stages"], run["name"]
        assert mech["context_parallel"] == 1
        if mech["schedule"] == "interleaved-1f1b":
            micro_batches = training["global_batch"] // (training["data_parallel"] * training["micro_batch"])
            assert micro_batches % training["pipeline_parallel"] == 0, run["name"]
            assert run["model"]["layers"] % (training["pipeline_parallel"] * mech["virtual_stages"]) == 0


def test_interleaving_lifts_the_deep_pipelines_by_shrinking_their_bubble():
    """bench/compare_training_runs.py's contributions: switched off, the interleaved runs fall
    back to plain 1F1B. On the deep pipelines (16 stages and more) the bubble (p - 1)/m is
    large and dividing it by v raises the prediction by at least 2 points."""
    from trainwall.calibration import contributions

    gains = {name: delta for name, mechanism, delta in contributions(RUNS) if mechanism == "interleaved schedule"}
    assert set(gains) == {r["name"] for r in load_runs(RUNS) if r["mechanisms"]["schedule"] == "interleaved-1f1b"}
    for run in load_runs(RUNS):
        if run["name"] in gains and run["parallel"]["pp"] >= 16:
            assert gains[run["name"]] >= 0.02, run["name"]


def test_each_mechanism_is_switched_off_exactly_where_a_run_uses_it():
    """The contributions name a mechanism for a run exactly when the run's configuration turns
    it on (FlashAttention: the runs the reference file says used it; sequence parallelism: a
    tensor-parallel run that keeps it), and FlashAttention never slows a run down (the
    materialised softmax reads and writes the s^2 scores)."""
    from trainwall.calibration import contributions, run_config

    listed = {(name, mechanism): delta for name, mechanism, delta in contributions(RUNS)}
    for run in load_runs(RUNS):
        training = run_config(run)["training"]
        flash = run["mechanisms"]["attention"] == "flash"
        assert ((run["name"], "FlashAttention") in listed) == flash, run["name"]
        tp_sp = training.get("tensor_parallel", 1) > 1 and training.get("sequence_parallel", True)
        assert ((run["name"], "sequence parallelism") in listed) == tp_sp, run["name"]
        if flash:
            assert listed[run["name"], "FlashAttention"] > 0, run["name"]


def test_the_readmes_calibration_table_is_the_bench_scripts(rows):
    from trainwall.calibration import readme_table

    readme = (RUNS.parents[2] / "README.md").read_text()
    assert readme_table(rows) in readme, "run: python bench/compare_training_runs.py --readme"
