"""The workload catalog: a name (or an inline architecture) -> a :class:`Workload`.

A workload is an architecture plus what the rest of the cost model needs about the
data it trains on: the data pipeline's per-sample costs and the numerical-stability
figures (``data/modalities.toml``, overridden per entry in ``data/catalog.toml``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

from trainwall.core.caches import bounded
from trainwall.core.errors import InputError, UnknownNameError
from trainwall.models import cnn, transformer
from trainwall.models.ir import Network

FAMILIES = ("transformer", "resnet", "mobilenet-v2", "ds-cnn", "micro-speech")
MODALITIES = ("text", "image", "audio")
AUGMENTATION_LEVELS = ("none", "light", "standard", "heavy")


@dataclass(frozen=True)
class DataProfile:
    """Per-sample data-pipeline figures (see ``data/modalities.toml``)."""

    sample_bytes: float
    device_bytes: float
    cpu_seconds: Mapping[str, float]
    #: augmentation run on the accelerator: memory-bound passes over the sample, by level
    accelerator_passes: Mapping[str, float]


@dataclass(frozen=True)
class StabilityProfile:
    """Numerical ranges, the critical batch and the local-SGD staleness limit (``data/modalities.toml``)."""

    gradient_min: float
    gradient_max: float
    activation_max: float
    critical_batch: float
    max_local_steps: float


@dataclass(frozen=True)
class Budget:
    """What the workload's published run trained on (``budget`` in ``data/catalog.toml``):
    ``amount`` tokens (sequence models) or samples, at ``batch`` of them per step, with the
    source that states both."""

    amount: float
    unit: str           # "tokens" | "samples"
    batch: float        # the published run's batch, in ``unit``
    source: str


@dataclass(frozen=True)
class Workload:
    """What is trained: an architecture and the properties of its data."""

    name: str
    family: str
    modality: str
    description: str
    source: str
    arch: Mapping[str, Any]
    default_seq_len: int
    data: DataProfile
    stability: StabilityProfile
    budget: Budget | None = None

    @property
    def is_sequence(self) -> bool:
        return self.family == "transformer"

    def critical_batch_samples(self, seq_len: int | None = None) -> float:
        """The critical batch in samples at ``seq_len`` (the one definition: the stability
        rules, the part-3 coefficients and time to train read it). A sequence model's critical
        batch is a number of tokens (the catalog's samples at its own sequence length), so
        longer sequences make it fewer samples."""
        if not self.is_sequence or not self.default_seq_len:
            return self.stability.critical_batch
        return self.stability.critical_batch * self.default_seq_len / (seq_len or self.default_seq_len)

    def network(self, seq_len: int | None = None, attention: str = "flash", swiglu: str = "eager") -> Network:
        """The network at this sequence length (transformers) or its fixed input size, with the
        attention and SwiGLU kernels named (transformers only)."""
        return build_network(self.family, _freeze(self.arch), seq_len or self.default_seq_len,
                             attention, self.name, swiglu)


def _freeze(arch: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in arch.items()))


TRANSFORMER_FIELDS = tuple(f.name for f in fields(transformer.TransformerSpec))


def build_network(family: str, arch: tuple, seq_len: int, attention: str, name: str,
                  swiglu: str = "eager") -> Network:
    """Dispatch an architecture table to its builder."""
    a = dict(arch)
    if family == "transformer":
        return transformer.build(transformer.TransformerSpec(**a), seq_len, attention, name, swiglu)
    if family == "resnet":
        return cnn.resnet(tuple(a["blocks"]), a.get("bottleneck", True), a["image_size"], a["classes"],
                          a.get("channels", 3), a.get("width"), name)
    if family == "mobilenet-v2":
        return cnn.mobilenet_v2(a.get("width_multiplier", 1.0), a["image_size"], a["classes"],
                                a.get("dropout", True), name)
    if family == "ds-cnn":
        return cnn.ds_cnn(a["frames"], a["features"], a["channels"], a["blocks"], a["classes"], name)
    if family == "micro-speech":
        return cnn.micro_speech(a.get("frames", 49), a.get("features", 40), a.get("filters", 8),
                                a.get("classes", 4), name)
    raise UnknownNameError("workload.architecture.kind", family, FAMILIES, "architecture kind")


@bounded(2)  # the two data files, modalities.toml and catalog.toml (a few kB each)
def _read(name: str) -> Mapping[str, Any]:
    """A data file, parsed once per process (callers copy before changing anything)."""
    return tomllib.loads(resources.files("trainwall.models").joinpath("data", name).read_text())


def make_workload(name: str, entry: Mapping[str, Any]) -> Workload:
    """A workload from a catalog entry or an inline architecture table."""
    modality = entry.get("modality", "text" if entry["family"] == "transformer" else "image")
    if modality not in MODALITIES:
        raise InputError("workload.modality", modality, f"must be one of {', '.join(MODALITIES)}")
    defaults = _read("modalities.toml")[modality]
    data = {**defaults["data"], **entry.get("data", {})}
    stability = {**defaults["stability"], **entry.get("stability", {})}
    seq_len = int(entry.get("seq_len", 0))
    if entry["family"] == "transformer":
        data["sample_bytes"] = data["bytes_per_token"] * seq_len
        data["device_bytes"] = data["device_bytes_per_token"] * seq_len
    return Workload(
        name=name, family=entry["family"], modality=modality,
        description=entry.get("description", name), source=entry.get("source", "inline architecture"),
        arch=MappingProxyType(dict(entry["arch"])), default_seq_len=seq_len,
        data=DataProfile(float(data["sample_bytes"]), float(data["device_bytes"]),
                         MappingProxyType(dict(data["cpu_seconds"])),
                         MappingProxyType(dict(data["accelerator_passes"]))),
        stability=StabilityProfile(**{k: float(v) for k, v in stability.items()}),
        budget=_budget(name, entry.get("budget"), entry["family"]),
    )


def _budget(name: str, entry: Mapping[str, Any] | None, family: str) -> Budget | None:
    """A catalog entry's ``budget = { tokens = N, batch = B, source = "..." }`` (or ``samples``):
    positive, finite numbers, tokens only for a sequence model."""
    import math

    if entry is None:
        return None
    units = [u for u in ("tokens", "samples") if u in entry]
    allowed = ("must give tokens (a sequence model) or samples, the published run's batch in the same unit, "
               "and their source; positive, finite numbers")
    numbers = [entry.get(units[0]) if units else None, entry.get("batch")]
    if (len(units) != 1 or not entry.get("source") or (units[0] == "tokens") != (family == "transformer")
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
                       for x in numbers)):
        raise InputError(f"{name}.budget", dict(entry), allowed)
    return Budget(float(numbers[0]), units[0], float(numbers[1]), str(entry["source"]))


@bounded(1)  # one catalog, a few kB
def workloads() -> Mapping[str, Workload]:
    """Every catalog workload by name."""
    return MappingProxyType({k: make_workload(k, v) for k, v in _read("catalog.toml").items()})


def workload(name: str, field: str = "workload.model") -> Workload:
    """Look up a workload; an unknown name raises with the closest known names."""
    try:
        return workloads()[name]
    except KeyError:
        raise UnknownNameError(field, name, workloads(), "model") from None
