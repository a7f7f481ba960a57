"""Fuzzing the configuration schema: every field, sizes near and beyond their bounds, and
``training.trainable`` strings with Unicode digits. Whatever arrives, ``parse_config``
either accepts it and the cost model answers with finite, JSON-serialisable metrics (what
``trainwall evaluate --json`` prints), or the input is refused with an :class:`InputError`
(exit 2): never another exception, never an infinite metric, never a long wait.

Plus one test per size defect of issue 13, through the real executable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trainwall.core import config as cfg
from trainwall.core.config import parse_config
from trainwall.core.errors import InputError
from trainwall.hardware.catalog import devices, links
from trainwall.models import transformer
from trainwall.models.catalog import workloads

from trainwall.api import evaluate

#: TRAINWALL_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_configs.py runs a deeper search.
EXAMPLES = int(os.environ.get("TRAINWALL_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: A refusal of a size out of bounds is checked before anything is built: this fast.
REFUSAL_S = 1.0

junk = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.floats(allow_nan=True),
                 st.integers(-2**70, 2**70), st.lists(st.integers(-2, 2), max_size=2))


def size(bound: int, low: int = 1, small: int = 64) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    """A size field: (valid values, small enough to evaluate fast; wild values: at and just past
    its bounds, far past them, of the wrong type)."""
    edges = [low, bound, bound - 1, bound + 1, low - 1, 2 * bound, 2**63 - 1, -(2**63), 10**40]
    return st.integers(low, min(bound, small)), st.one_of(st.sampled_from(edges), junk)


def real(low: float, high: float) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    edges = [low, high, high * 2, low - 1, -0.0, 1e308, float("inf"), float("-inf"), float("nan"), 1e-300,
             int(high) + 1]
    return st.floats(low, high), st.one_of(st.sampled_from(edges), junk)


def choice(values) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    values = list(values)
    return st.sampled_from(values), st.one_of(st.sampled_from([v.upper() if isinstance(v, str) else not v
                                                               for v in values]), junk)


FLAG = choice([True, False])
#: ``last:N`` / ``first:N`` with N in any digits: ASCII, superscript, Arabic-Indic, Devanagari, fullwidth.
digit_strings = st.text(st.sampled_from("0123456789²³¹١٢٣٤۵९０１２"), min_size=0, max_size=9)
trainable = st.one_of(st.sampled_from(["all", "none", "last:1", "first:2", "last:0", "last:99999999"]),
                      st.builds(lambda h, n: f"{h}:{n}", st.sampled_from(["last", "first", "LAST", "mid"]),
                                digit_strings),
                      st.lists(st.integers(-1, 40), max_size=6), st.lists(st.integers(0, 2**21), max_size=2), junk)
#: Blocks stay few where the cost model runs (10,000 take a second or two: tested once, below).
blocks = (st.lists(st.integers(1, 3), min_size=1, max_size=8),
          st.one_of(st.lists(st.sampled_from([0, -1, 1, cfg.MAX_BLOCKS, cfg.MAX_BLOCKS + 1, 10**8, 2.0]),
                             max_size=9), junk))

#: Each kind's fields: (valid, wild) strategies; the required ones first.
ARCHITECTURES = {
    "transformer": ({"layers": size(transformer.MAX_LAYERS, small=4), "hidden": (st.sampled_from([8, 16, 64]),
                     size(transformer.MAX_HIDDEN)[1]), "heads": (st.sampled_from([1, 2, 4]),
                     size(transformer.MAX_HEADS)[1]), "ffn": size(transformer.MAX_FFN),
                     "vocab": size(transformer.MAX_VOCAB)},
                    {"kv_heads": (st.sampled_from([1, 2]), size(transformer.MAX_HEADS)[1]),
                     "head_dim": size(transformer.MAX_HIDDEN), "max_positions": size(transformer.MAX_VOCAB, low=0),
                     "type_vocab": size(transformer.MAX_VOCAB, low=0), "ffn_kind": choice(["gelu", "swiglu"]),
                     "norm": choice(["layernorm", "rmsnorm"]), "position": choice(["learned", "rope"]),
                     "bias": FLAG, "dropout": FLAG, "tied_embeddings": FLAG, "fused_qkv": FLAG, "encoder": FLAG,
                     "lm_head": FLAG}),
    "resnet": ({"blocks": blocks, "image_size": size(cfg.MAX_IMAGE, low=32, small=96),
                "classes": size(cfg.MAX_CLASSES)},
               {"bottleneck": FLAG, "width": size(cfg.MAX_IMAGE, low=32, small=96),
                "channels": size(cfg.MAX_CHANNELS, small=4)}),
    "mobilenet-v2": ({"image_size": size(cfg.MAX_IMAGE, low=32, small=96), "classes": size(cfg.MAX_CLASSES)},
                     {"width_multiplier": real(0.1, 4.0), "dropout": FLAG}),
    "ds-cnn": ({"frames": size(cfg.MAX_FRAMES), "features": size(cfg.MAX_CHANNELS),
                "channels": size(cfg.MAX_CHANNELS), "blocks": size(cfg.MAX_BLOCKS, small=4),
                "classes": size(cfg.MAX_CLASSES)}, {}),
    "micro-speech": ({}, {"frames": size(cfg.MAX_FRAMES), "features": size(cfg.MAX_CHANNELS),
                          "filters": size(cfg.MAX_CHANNELS), "classes": size(cfg.MAX_CLASSES)}),
}
#: Devices stay few where the cost model runs (2^14 takes seconds: tested once, below).
degree = (st.sampled_from([1, 2, 4, 8]), size(cfg.MAX_DEVICES)[1])
FIELDS = {
    "workload.seq_len": size(cfg.MAX_SEQ_LEN, small=2048), "workload.modality": choice(["text", "image", "audio"]),
    "system.devices": (st.sampled_from([1, 2, 4, 8, 16, 64]), size(cfg.MAX_DEVICES)[1]),
    "system.devices_per_node": degree, "system.topology": choice(cfg.TOPOLOGIES),
    "system.intra_node_link": choice(links()), "system.inter_node_link": choice(links()),
    "system.oversubscription": real(1.0, 64.0), "system.background_network_load": real(0.0, 0.999),
    "system.cpu_cores_per_node": size(cfg.MAX_CORES), "system.reserved_compute_fraction": real(0.0, 0.999),
    "system.reserved_memory": real(0.0, cfg.MAX_MEMORY), "system.memory_budget": real(1.0, cfg.MAX_MEMORY),
    "system.price_per_device_hour": real(0.0, 1e6), "system.pue": real(1.0, 3.0),
    "system.grid_kg_co2_per_kwh": real(0.0, 2.0), "system.power_budget_w": real(1e-9, 1e6),
    "system.pricing": choice(["on-demand", "reserved"]),
    "training.optimizer": choice(cfg.OPTIMIZERS), "training.optimizer_state": choice(["fp32", "8bit"]),
    "training.precision": choice(cfg.PRECISIONS), "training.loss_scaling": choice(cfg.LOSS_SCALING),
    "training.loss_scale": real(1.0, 2.0**32), "training.gradient_dtype": choice(["param", "fp32"]), "training.recompute": choice(cfg.RECOMPUTE),
    "training.attention": choice(cfg.ATTENTION), "training.micro_batch": size(cfg.MAX_BATCH),
    "training.global_batch": size(cfg.MAX_BATCH), "training.tensor_parallel": degree,
    "training.pipeline_parallel": degree, "training.virtual_stages": size(1024), "training.context_parallel": degree,
    "training.data_parallel": degree, "training.sequence_parallel": FLAG, "training.tp_backward_overlap": FLAG,
    "training.tp_comm_overlap": FLAG, "training.context_parallel_exchange": choice(["ring", "all_gather"]),
    "training.swiglu": choice(["eager", "fused"]), "training.pipeline_split": choice(["balanced", "layers"]),
    "training.zero_stage": size(3, low=0), "training.gradient_clipping": FLAG,
    "training.trainable": (st.sampled_from(["all", "none", "last:1", "first:2", [0, 1]]), trainable),
    "training.local_steps": size(cfg.MAX_LOCAL_STEPS, small=8), "data.workers": size(4096, low=0),
    "data.augmentation": choice(cfg.AUGMENTATION), "data.augmentation_on": choice(["cpu", "accelerator"]),
    "data.echo": size(64), "data.samples_per_hour": real(1e-9, 1e12),
}


def _put(raw: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        raw = raw.setdefault(part, {})
    raw[leaf] = value


@st.composite
def configs(draw) -> dict:
    """A valid-looking configuration (the workload, some optional fields), then up to three fields
    set to wild values: every field is reached, and most examples get as far as the cost model."""
    raw: dict = {"system": {"accelerator": draw(st.sampled_from(sorted(devices())))}}
    paths = dict(FIELDS)
    if draw(st.booleans()):
        _put(raw, "workload.model", draw(st.sampled_from(sorted(workloads()))))
        paths["workload.model"] = choice(workloads())
    else:
        kind = draw(st.sampled_from(sorted(ARCHITECTURES)))
        required, optional = ARCHITECTURES[kind]
        _put(raw, "workload.architecture.kind", kind)
        for name, (valid, _) in required.items():
            _put(raw, f"workload.architecture.{name}", draw(valid))
        paths |= {f"workload.architecture.{k}": v for k, v in (required | optional).items()}
        if kind == "transformer":
            _put(raw, "workload.seq_len", draw(st.sampled_from([16, 128, 1024])))
    for dotted in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=6, unique=True)):
        _put(raw, dotted, draw(FIELDS[dotted][0]))
    for dotted in draw(st.lists(st.sampled_from(sorted(paths)), max_size=3, unique=True)):
        _put(raw, dotted, draw(paths[dotted][1]))
    return raw


def outcome(raw: object) -> str:
    """'accepted' (finite JSON metrics) or 'refused' (an InputError); anything else fails the test."""
    try:
        config = parse_config(raw)
        metrics = evaluate(config)
    except InputError as exc:
        assert "\n" not in str(exc)
        return "refused"
    json.dumps(metrics.to_dict(), allow_nan=False, default=float)   # what `evaluate --json` prints
    return "accepted"


@SETTINGS
@given(raw=configs())
def test_any_configuration_is_evaluated_finitely_or_refused(raw):
    outcome(raw)


@SETTINGS
@given(spec=trainable, model=st.sampled_from(["gpt-2", "ds-cnn-s", "resnet-18"]))
def test_trainable_takes_ascii_digits_only(spec, model):
    raw = {"workload": {"model": model}, "system": {"accelerator": "h100-sxm"}, "training": {"trainable": spec}}
    result = outcome(raw)
    if isinstance(spec, str) and spec.partition(":")[2] and not spec.partition(":")[2].isascii():
        assert result == "refused"          # "last:²" and "last:١" are not numbers here


@pytest.mark.parametrize("spec", ["last:²", "last:١", "first:٣", "last:１", "last:²²"])
def test_unicode_digits_in_trainable_are_the_users_error(spec):
    raw = {"workload": {"model": "gpt-2"}, "system": {"accelerator": "h100-sxm"}, "training": {"trainable": spec}}
    with pytest.raises(InputError) as caught:
        parse_config(raw)
    assert caught.value.field == "training.trainable" and caught.value.value == spec


@SETTINGS
@given(name=st.sampled_from(["micro_batch", "global_batch"]), value=st.integers(2**40 - 2, 2**40 + 2))
def test_batches_near_their_bound(name, value):
    raw = {"workload": {"model": "gpt-2"}, "system": {"accelerator": "h100-sxm"}, "training": {name: value}}
    assert outcome(raw) == ("accepted" if value <= cfg.MAX_BATCH else "refused")


# --- every bound, at the bound: accepted, evaluated, finite --------------------------------------

AT_THE_BOUNDS = {
    "transformer": {"workload": {"architecture": {
        "kind": "transformer", "layers": transformer.MAX_LAYERS, "hidden": transformer.MAX_HIDDEN,
        "heads": transformer.MAX_HEADS, "ffn": transformer.MAX_FFN, "vocab": transformer.MAX_VOCAB,
        "kv_heads": transformer.MAX_HEADS, "head_dim": transformer.MAX_HIDDEN,
        "max_positions": transformer.MAX_VOCAB, "type_vocab": transformer.MAX_VOCAB},
        "seq_len": cfg.MAX_SEQ_LEN}, "system": {"accelerator": "h100-sxm"},
        "training": {"micro_batch": cfg.MAX_BATCH, "global_batch": cfg.MAX_BATCH, "attention": "eager",
                     "local_steps": cfg.MAX_LOCAL_STEPS}},
    "resnet": {"workload": {"architecture": {
        "kind": "resnet", "blocks": [cfg.MAX_BLOCKS], "image_size": cfg.MAX_IMAGE, "width": cfg.MAX_IMAGE,
        "classes": cfg.MAX_CLASSES, "channels": cfg.MAX_CHANNELS}}, "system": {"accelerator": "h100-sxm"}},
    "ds-cnn": {"workload": {"architecture": {
        "kind": "ds-cnn", "frames": cfg.MAX_FRAMES, "features": cfg.MAX_CHANNELS, "channels": cfg.MAX_CHANNELS,
        "blocks": cfg.MAX_BLOCKS, "classes": cfg.MAX_CLASSES}}, "system": {"accelerator": "h100-sxm"}},
    "micro-speech": {"workload": {"architecture": {
        "kind": "micro-speech", "frames": cfg.MAX_FRAMES, "features": cfg.MAX_CHANNELS,
        "filters": cfg.MAX_CHANNELS, "classes": cfg.MAX_CLASSES}}, "system": {"accelerator": "h100-sxm"}},
    "mobilenet": {"workload": {"architecture": {
        "kind": "mobilenet-v2", "width_multiplier": 4.0, "image_size": cfg.MAX_IMAGE, "classes": cfg.MAX_CLASSES}},
        "system": {"accelerator": "h100-sxm", "reserved_memory": cfg.MAX_MEMORY, "memory_budget": cfg.MAX_MEMORY,
                   "cpu_cores_per_node": cfg.MAX_CORES}},
    "devices": {"workload": {"model": "gpt-2"}, "system": {"accelerator": "h100-sxm", "devices": cfg.MAX_DEVICES,
                                                          "devices_per_node": cfg.MAX_DEVICES}},
}


@pytest.mark.parametrize("name", list(AT_THE_BOUNDS))
def test_every_size_at_its_bound_is_evaluated_finitely(name):
    assert outcome(AT_THE_BOUNDS[name]) == "accepted"


# --- the defects of issue 13, through the executable --------------------------------------------

BASE = '[workload]\nmodel = "gpt-2"\n[system]\naccelerator = "h100-sxm"\n'
ARCH = '[system]\naccelerator = "h100-sxm"\n[workload.architecture]\n'
DEFECTS = {
    "layers": (ARCH + 'kind = "transformer"\nlayers = 10000000\nhidden = 64\nheads = 1\nffn = 64\nvocab = 10\n',
               "workload.architecture.layers = 10000000"),
    "blocks": (ARCH + 'kind = "resnet"\nblocks = [100000000]\nimage_size = 224\nclasses = 10\n',
               "workload.architecture.blocks"),
    "global_batch": (BASE + "[training]\nglobal_batch = 2e30\n", "training.global_batch"),
    "micro_batch": (BASE + "[training]\nmicro_batch = " + "1" + "0" * 306 + "\n", "micro_batch"),
    "seq_len": (BASE.replace('"gpt-2"\n', '"gpt-2"\nseq_len = 1' + "0" * 200 + "\n"), "seq_len"),
    "huge_int": (BASE + "[training]\nmicro_batch = " + "9" * 5000 + "\n", "4300 digits"),
    "superscript": (BASE + '[training]\ntrainable = "last:²"\n', "training.trainable = 'last:²'"),
    "arabic_indic": (BASE + '[training]\ntrainable = "last:١"\n', "training.trainable = 'last:١'"),
    "devices": (BASE.replace('"h100-sxm"\n', '"h100-sxm"\ndevices = 1048576\n'), "system.devices"),
}


@pytest.mark.parametrize("name", list(DEFECTS))
def test_a_size_out_of_bounds_is_refused_at_once_in_one_line(tmp_path, name):
    text, says = DEFECTS[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "trainwall.cli", "evaluate", str(path), "--json"],
                       capture_output=True, text=True, timeout=60, check=False)
    elapsed = time.monotonic() - start
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert says in r.stderr and f"{name}.toml" in r.stderr
    assert elapsed < 5 * REFUSAL_S          # interpreter start and imports included
