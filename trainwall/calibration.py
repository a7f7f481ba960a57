"""Published training runs, replayed through the cost model.

A run from ``tests/reference/training_runs.toml`` (published figures with their sources)
is turned into a trainwall configuration and evaluated by
:func:`trainwall.optimizer.costmodel.evaluate`, the same code every other command
uses. The figure compared is the one the authors reported:

* Narayanan et al. 2021, Table 1 ("% of theoretical peak"): counts the recompute
  forward pass (96 B s l h^2 ...), so it is compared with our **HFU**;
* PaLM (Chowdhery et al. 2022, appendix B) and MosaicML's llm-foundry tables:
  **MFU**, model FLOPs only.

Assumptions, stated because the sources do not give them:

* Each run's schedule, virtual stages and attention kernel are read from its
  ``mechanisms`` table in the reference file, which says which are published and which
  assumed (a run replays exactly them; context parallelism: none run uses it).
* Megatron Table 1 gives no micro-batch size: we take 1 (the paper's section 5
  experiments use micro-batches of 1 to 8). Its pipelined runs use the interleaved
  schedule (section 5.1) with, assumed, one layer per model chunk.
* PaLM: one 3072-chip pod is one ICI domain (``devices_per_node = 3072``); the two
  pods talk over the data-centre network. Multi-query attention (one K/V head),
  SwiGLU, no biases, shared embeddings (Chowdhery et al. 2022, section 2); no
  gradient accumulation (micro-batch = global batch / data-parallel degree). PaLM
  shards weights over the data axis inside a pod and replicates them across the two
  pods; that hybrid sharding is not modelled, so the run is replayed with ZeRO-1,
  whose gradient traffic is the same all-reduce. Its memory is therefore not compared.
* MPT (llm-foundry): FSDP ``full_shard`` is ZeRO stage 3; ALiBi positions carry no
  parameters (as RoPE here); no biases; flash attention.

:func:`contributions` replays each run once more per mechanism it uses, with that mechanism
switched off, and reports the difference: what the mechanism adds to the prediction.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from trainwall.hardware.catalog import Device

#: Precision spellings of the reference file -> ours.
_PRECISION = {"fp16-mixed": "fp16-mixed", "bf16-mixed": "bf16-mixed", "bf16": "bf16-mixed"}


@dataclass(frozen=True)
class RunComparison:
    name: str
    source: str
    metric: str          # "hfu" or "mfu": the figure the authors reported
    published: float
    predicted: float
    params_published: float
    params_ours: float

    @property
    def error(self) -> float:
        return self.predicted - self.published


def _architecture(name: str, model: dict) -> dict:
    arch = {"kind": "transformer", "layers": model["layers"], "hidden": model["hidden"], "heads": model["heads"],
            "ffn": model["ffn"], "vocab": model["vocab"]}
    if name.startswith("megatron"):
        arch |= {"max_positions": model["seq_len"]}
    elif name.startswith("palm"):
        arch |= {"head_dim": model["head_dim"], "kv_heads": 1, "ffn_kind": "swiglu", "position": "rope",
                 "bias": False, "dropout": False, "fused_qkv": False}
    elif name.startswith("mpt"):
        arch |= {"position": "rope", "bias": False, "dropout": False}
    else:
        raise ValueError(f"no architecture mapping for run {name!r}")
    return arch


def run_config(run: dict) -> dict:
    """The trainwall configuration (as data, before validation) of one published run."""
    name, model, par = run["name"], run["model"], run["parallel"]
    system = {"accelerator": run["accelerator"], "devices": run["devices"]}
    training = {"optimizer": "adam", "precision": _PRECISION[run["precision"]], "recompute": run["recompute"],
                "gradient_clipping": True, "loss_scaling": "dynamic" if run["precision"].startswith("fp16") else "none"}
    training |= _mechanisms(run)
    if "fsdp" in par:  # llm-foundry: FSDP full_shard over every device
        training |= {"micro_batch": par["micro_batch"], "global_batch": par["global_batch"],
                     "data_parallel": run["devices"], "zero_stage": 3}
    else:
        training |= {"micro_batch": 1, "global_batch": par["global_batch"], "tensor_parallel": par["tp"],
                     "pipeline_parallel": par["pp"], "data_parallel": par["dp"], "zero_stage": 1}
    if name.startswith("palm"):
        system["devices_per_node"] = 3072
        training |= {"micro_batch": par["global_batch"] // par["dp"]}
    return {"workload": {"architecture": _architecture(name, model), "seq_len": model["seq_len"]},
            "system": system, "training": training, "data": {"workers": 8, "augmentation": "none"}}


def _mechanisms(run: dict) -> dict:
    """The training keys of the run's ``mechanisms`` table: its attention kernel, its
    tensor-parallel backward overlap and sequence parallelism where stated and, on the
    interleaved schedule, its virtual stages."""
    mech = run["mechanisms"]
    if mech["context_parallel"] != 1:
        raise ValueError(f"run {run['name']!r}: context parallelism is not modelled")
    keys = {"attention": mech["attention"]}
    for stated in ("tp_backward_overlap", "sequence_parallel"):
        if stated in mech:
            keys[stated] = mech[stated]
    if mech["schedule"] == "interleaved-1f1b":
        keys["virtual_stages"] = mech["virtual_stages"]
    elif mech["schedule"] not in ("none", "1f1b"):
        raise ValueError(f"run {run['name']!r}: unknown schedule {mech['schedule']!r}")
    return keys


def _published(run: dict) -> tuple[str, float]:
    reported = run["reported"]
    return ("hfu", reported["hfu_like"]) if "hfu_like" in reported else ("mfu", reported["mfu"])


def _predict(config, metric: str, device: Device | None = None) -> float:
    from trainwall.optimizer.costmodel import evaluate

    metrics = evaluate(config, device)
    return metrics.hfu if metric == "hfu" else metrics.mfu


def load_runs(path: Path) -> list[dict]:
    return tomllib.loads(Path(path).read_text())["run"]


def compare(path: Path) -> list[RunComparison]:
    """Every run of ``path`` with its published and predicted utilisation (catalog constants)."""
    from trainwall.core.config import parse_config
    from trainwall.optimizer.costmodel import resolve_workload

    out = []
    for run in load_runs(path):
        config = parse_config(run_config(run), f"{path}:{run['name']}")
        metric, published = _published(run)
        params = resolve_workload(config).network(config.workload.seq_len).params
        out.append(RunComparison(run["name"], run["source"], metric, published, _predict(config, metric),
                                 run["model"]["params_b"] * 1e9, params))
    return out


#: The mechanisms a step's time is made of, in the order the decomposition prints them.
MECHANISMS = ("compute", "recompute", "optimizer", "bubble", "exposed_tp", "exposed_pp", "exposed_cp", "exposed_dp",
              "data_stall")


def decomposition(path: Path) -> list[tuple[str, float, dict[str, float]]]:
    """Each run's step and its parts' shares of it (catalog constants): the forward and
    backward compute without recompute and the optimizer update, the recompute, the
    pipeline bubble, each parallelism's exposed communication (tensor, pipeline, context,
    data), the data stall. The shares
    sum to 1 (:func:`trainwall.optimizer.costmodel.evaluate`'s StepTime)."""
    from trainwall.core.config import parse_config
    from trainwall.optimizer.costmodel import evaluate

    out = []
    for run in load_runs(path):
        t = evaluate(parse_config(run_config(run), f"{path}:{run['name']}")).time
        exposed_dp = (t.exposed_communication_s - t.tensor_parallel_exposed_s - t.pipeline_p2p_s
                      - t.context_parallel_exposed_s)
        parts = {"compute": t.compute_s - t.recompute_s - t.optimizer_s, "recompute": t.recompute_s,
                 "optimizer": t.optimizer_s, "bubble": t.bubble_s, "exposed_tp": t.tensor_parallel_exposed_s,
                 "exposed_pp": t.pipeline_p2p_s, "exposed_cp": t.context_parallel_exposed_s,
                 "exposed_dp": exposed_dp, "data_stall": t.data_stall_s}
        out.append((run["name"], t.step_s, {k: v / t.step_s for k, v in parts.items()}))
    return out


def _without(key: str, value: object, in_use: Callable[[dict], bool]) -> Callable[[dict], dict | None]:
    """A run's training keys with ``key`` set to ``value``, or None where ``in_use`` says the run
    does not use the mechanism (so switching it off would change nothing)."""
    return lambda training: {**training, key: value} if in_use(training) else None


def _tensor_parallel(training: dict) -> bool:
    return training.get("tensor_parallel", 1) > 1


#: Each modelled mechanism a published run may use, and its configuration without it (defaults
#: as core/config.py's): the interleaved schedule becomes plain 1F1B, FlashAttention the
#: materialised softmax, and the tensor-parallel overlaps and sequence parallelism go. Rings per
#: NIC and NCCL's bus-bandwidth factors are the topology's physics, with no switch to turn off.
_SWITCHED_OFF: dict[str, Callable[[dict], dict | None]] = {
    "interleaved schedule": _without("virtual_stages", 1, lambda t: t.get("virtual_stages", 1) > 1),
    "FlashAttention": _without("attention", "eager", lambda t: t.get("attention", "flash") == "flash"),
    "sequence parallelism": _without("sequence_parallel", False,
                                     lambda t: _tensor_parallel(t) and t.get("sequence_parallel", True)),
    "TP backward overlap": _without("tp_backward_overlap", False,
                                    lambda t: _tensor_parallel(t) and t.get("tp_backward_overlap", True)),
    "TP comm overlap (TE)": _without("tp_comm_overlap", False, lambda t: t.get("tp_comm_overlap", False)),
}


def contributions(path: Path) -> list[tuple[str, str, float]]:
    """What each mechanism a run uses adds to its predicted utilisation (catalog constants):
    (run, mechanism, predicted with it - predicted with it switched off, as ``_SWITCHED_OFF``
    says), for every mechanism every run uses."""
    from trainwall.core.config import parse_config

    out = []
    for run in load_runs(path):
        raw, (metric, _) = run_config(run), _published(run)
        used = [(mechanism, off(raw["training"])) for mechanism, off in _SWITCHED_OFF.items()]
        used = [(mechanism, {**raw, "training": training}) for mechanism, training in used if training is not None]
        if used:
            with_it = _predict(parse_config(raw, run["name"]), metric)
            out += [(run["name"], mechanism, with_it - _predict(parse_config(without, run["name"]), metric))
                    for mechanism, without in used]
    return out


def readme_table(rows: list[RunComparison]) -> str:
    """The README's table of predicted vs published utilisation, one row per run."""
    lines = ["| run | source | metric | published | trainwall | error |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.source} | {r.metric.upper()} | {r.published:.3f} | {r.predicted:.3f} | {round(r.error, 3) or 0.0:+.3f} |"
              for r in rows]
    mae = sum(abs(r.error) for r in rows) / len(rows)
    return "\n".join(lines) + f"\n\nMean absolute error {mae:.4f} over {len(rows)} runs (catalog constants).\n"


def fit_gemm_efficiency(runs: list[dict]) -> float:
    """The device's ``gemm_efficiency`` minimising the mean absolute error over ``runs``.

    All runs must be on one accelerator: the constant is the device's, shared by every
    run on it (one constant per run would be no model). Searched on a grid, coarse
    (0.02 steps over 0.30-1.00) then fine (0.005 steps around the best coarse point),
    so the fit is deterministic; ties go to the smaller constant.
    """
    from trainwall.core.config import parse_config
    from trainwall.hardware.catalog import device as catalog_device

    keys = {run["accelerator"] for run in runs}
    if len(keys) != 1:
        raise ValueError(f"fit one accelerator at a time, got {sorted(keys)}")
    base = catalog_device(keys.pop())
    cases = [(parse_config(run_config(run), run["name"]), *_published(run)) for run in runs]

    def mae(eff: float) -> float:
        dev = replace(base, gemm_efficiency=eff)
        return sum(abs(_predict(c, metric, dev) - pub) for c, metric, pub in cases) / len(cases)

    best = min((x / 50 for x in range(15, 51)), key=lambda eff: (mae(eff), eff))
    fine = [round(best + k / 200, 3) for k in range(-4, 5) if 0.3 <= best + k / 200 <= 1.0]
    return min(fine, key=lambda eff: (mae(eff), eff))


def leave_one_out(path: Path) -> list[tuple[str, float, float]]:
    """Out-of-sample errors: each run predicted with its device's constant fitted on the others.

    Returns (run, fitted constant, error) for every run whose device has other runs;
    a device with a single run cannot be validated this way and is left out.
    """
    from trainwall.core.config import parse_config
    from trainwall.hardware.catalog import device as catalog_device

    runs, out = load_runs(path), []
    for run in runs:
        others = [r for r in runs if r["accelerator"] == run["accelerator"] and r is not run]
        if not others:
            continue
        eff = fit_gemm_efficiency(others)
        metric, published = _published(run)
        dev = replace(catalog_device(run["accelerator"]), gemm_efficiency=eff)
        out.append((run["name"], eff, _predict(parse_config(run_config(run), run["name"]), metric, dev) - published))
    return out
