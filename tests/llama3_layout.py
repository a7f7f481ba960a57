"""Llama 3 405B's pre-training layout of Table 4 as a trainwall configuration (Dubey et al. 2024,
section 3.3.2): what each setting rests on is quoted in ``reference/training_cost.toml``,
``[llama3_paper.parallelism_405b]``; the tests that use it are ``test_llama3_pipeline.py`` and
``test_training_run.py``."""

from __future__ import annotations

import tomllib
from pathlib import Path

from trainwall.core.config import Config, parse_config
from trainwall.models.catalog import workload

PAPER = tomllib.loads((Path(__file__).parent / "reference" / "training_cost.toml").read_text())["llama3_paper"]
ARCH = workload("llama-3-405b").arch          # the catalog's, from Meta's config.json
SEQ, TP, PP = 8192, 8, 16
#: "the first model chunk on the first stage has only the embedding": a chunk holds one layer,
#: so each rank holds (126 blocks + the embedding + the head) / PP of them
V = (ARCH["layers"] + 2) // PP


def table_4(row: str, swiglu: str = "fused", system: dict | None = None, **training) -> Config:
    """Table 4's ``row`` (``8192_gpus`` or ``16384_gpus``): ZeRO-2 with fp32 gradients (FSDP as the
    paper describes it), the layers split with the embedding and the head counted, V chunks per
    rank, no recompute; micro-batches of one sequence and the SwiGLU kernel are assumptions."""
    r = PAPER["table4"][row]
    assert (r["tp"], r["pp"], r["cp"], r["seq_len"]) == (TP, PP, 1, SEQ)
    return parse_config({
        "workload": {"model": "llama-3-405b", "seq_len": SEQ},
        "system": {"accelerator": "h100-sxm", "devices": r["gpus"], **(system or {})},
        "training": {"optimizer": "adam", "precision": "bf16-mixed", "recompute": "none", "micro_batch": 1,
                     "global_batch": r["dp"] * r["batch_per_dp"], "tensor_parallel": TP, "pipeline_parallel": PP,
                     "data_parallel": r["dp"], "virtual_stages": V, "pipeline_split": "layers",
                     "zero_stage": 2, "gradient_dtype": "fp32", "swiglu": swiglu, **training},
        "data": {"workers": 8, "augmentation": "none"}}, f"Llama 3 405B, Table 4, {row}")
