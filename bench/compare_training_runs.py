"""Predicted vs published utilisation of large training runs (tests/reference/training_runs.toml).

    python bench/compare_training_runs.py

Prints one row per run (the figure the authors reported: HFU for Megatron-LM's
Table 1, MFU for PaLM and MPT), the mean absolute error and the worst run; then each
device's fitted ``gemm_efficiency`` beside the catalog's, and the leave-one-run-out
errors (each run predicted with the constant fitted on the other runs of its device), and
each run's step time split into its mechanisms (compute, recompute, optimizer, bubble,
exposed tensor-, pipeline-, context- and data-parallel communication, data stall) as shares of the step,
and what each mechanism a run uses (the interleaved schedule, FlashAttention, sequence
parallelism, the tensor-parallel overlaps) adds to its prediction: the prediction less the
same run's with the mechanism switched off.
tests/test_training_runs.py holds in-sample MAE <= 0.025 with no run off by more than
0.08, and leave-one-out MAE <= 0.035.

    python bench/compare_training_runs.py --readme

also rewrites the README's table of predicted vs published (between its two markers).
"""

import sys
from pathlib import Path

from trainwall.calibration import (MECHANISMS, compare, contributions, decomposition, fit_gemm_efficiency,
                                   leave_one_out, load_runs, readme_table)
from trainwall.core.outputs import atomic_write
from trainwall.hardware.catalog import device

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "tests" / "reference" / "training_runs.toml"
BEGIN, END = "<!-- calibration table: python bench/compare_training_runs.py --readme -->", "<!-- end of the calibration table -->"


def rewrite_readme(table: str) -> None:
    """Put ``table`` between the README's two markers."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    atomic_write(readme, f"{head}{BEGIN}\n{table}{END}{tail}")


def main() -> None:
    rows = compare(RUNS)
    print(f"{'run':<18} {'metric':>6} {'published':>9} {'ours':>7} {'error':>7} {'params (pub / ours)':>22}")
    for r in rows:
        print(f"{r.name:<18} {r.metric:>6} {r.published:>9.3f} {r.predicted:>7.3f} {r.error:>+7.3f} "
              f"{r.params_published / 1e9:>10.2f}B / {r.params_ours / 1e9:.2f}B")
    errors = [abs(r.error) for r in rows]
    worst = max(rows, key=lambda r: abs(r.error))
    print(f"in sample: MAE {sum(errors) / len(errors):.4f} over {len(rows)} runs; worst {worst.name} {worst.error:+.3f}")

    runs = load_runs(RUNS)
    for key in sorted({r["accelerator"] for r in runs}):
        mine = [r for r in runs if r["accelerator"] == key]
        print(f"gemm_efficiency {key:<14} fitted {fit_gemm_efficiency(mine):.3f} on {len(mine)} runs, "
              f"catalog {device(key).gemm_efficiency:.3f}")
    loo = leave_one_out(RUNS)
    for name, eff, err in loo:
        print(f"leave-one-out {name:<18} constant {eff:.3f}  error {err:+.3f}")
    print(f"leave-one-out: MAE {sum(abs(e) for *_, e in loo) / len(loo):.4f} over {len(loo)} runs; "
          f"worst {max(abs(e) for *_, e in loo):.3f}")
    print(f"\nstep time by mechanism (share of the step)\n{'run':<18} {'step s':>8} "
          + " ".join(f"{m:>10}" for m in MECHANISMS))
    for name, step, shares in decomposition(RUNS):
        print(f"{name:<18} {step:>8.3f} " + " ".join(f"{shares[m]:>10.1%}" for m in MECHANISMS))
    print("\nwhat each mechanism adds to the predicted utilisation")
    for name, mechanism, delta in contributions(RUNS):
        print(f"{name:<18} {mechanism:<22} {delta:+.3f}")
    if "--readme" in sys.argv[1:]:
        rewrite_readme(readme_table(rows))
        print("README.md: calibration table rewritten")


if __name__ == "__main__":
    main()
