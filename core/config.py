"""The configuration file: its schema (pydantic, one definition for validation and the
published JSON Schema), defaults drawn from the catalogs, and cross-field rules.

A configuration names *what* is trained (``[workload]``), *on what* (``[system]``),
*how* (``[training]``) and *how it is fed* (``[data]``); see docs/INTERFACE.md. Unknown
fields are errors (a typo must never be silently ignored), NaN and infinities are
refused, and every message names the dotted field, the value and what is allowed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from trainwall.core.errors import InputError, UnknownNameError
from trainwall.models.transformer import TransformerSpec

OPTIMIZERS = ("sgd", "momentum", "adam")
PRECISIONS = ("fp32", "fp16-mixed", "bf16-mixed", "fp8-mixed")
LOSS_SCALING = ("none", "static", "dynamic")
RECOMPUTE = ("none", "selective", "full")
ATTENTION = ("flash", "eager")
AUGMENTATION = ("none", "light", "standard", "heavy")
TOPOLOGIES = ("auto", "cluster", "single", "star")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


#: Upper bounds of every size, stated and generous (most are 100 times what the largest
#: runs and models use today), checked before anything is built: a typo such as
#: ``micro_batch = 10**306`` is a one-line error (exit 2), never an hour of work or an
#: infinite metric. The transformer's own bounds live beside its spec
#: (trainwall.models.transformer); every float field is finite and bounded too.
MAX_BATCH = 2**40           # samples: micro_batch, global_batch
MAX_SEQ_LEN = 2**24         # tokens per sample
#: Accelerators, devices per node, each parallel degree: 2^14 = 16,384, the largest runs
#: published (Llama 3 405B). The cluster model routes every collective over the fabric at a
#: cost that grows with the square of the device count: 2^14 answers in seconds, 2^15 in half
#: a minute, 2^20 not in hours.
MAX_DEVICES = 2**14
MAX_CORES = 2**16           # data-loading CPU cores per node
MAX_MEMORY = 2.0**60        # bytes of device memory (reserved, budget): an exbibyte
MAX_BLOCKS = 10_000         # CNN blocks, per stage and in all (ResNet), in all (DS-CNN)
MAX_IMAGE = 2**16           # pixels per side
MAX_CLASSES = 2**24         # output classes
MAX_CHANNELS = 2**16        # input channels, channels per block, filters
MAX_FRAMES = 2**20          # audio frames per sample
MAX_LOCAL_STEPS = 2**20     # local SGD steps between weight averages
MAX_LAYER_INDEX = 2**20     # a layer index in training.trainable (networks have at most about 10,000 layers)


def Sized(bound: int, low: int = 1):  # a type alias with parameters, hence the capital
    """An integer from ``low`` to ``bound``."""
    return Annotated[int, Field(ge=low, le=bound)]


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
#: ``training.trainable`` as a string: ASCII digits only (``str.isdigit`` also accepts "²" and "١").
TRAINABLE_PATTERN = r"^(all|none|(last|first):[0-9]{1,7})$"
MAX_TRAINABLE_LIST = 4096
TRAINABLE_ALLOWED = ('must be "all", "none", "last:N" or "first:N" (N in ASCII digits 0-9, at most 7 of them), '
                     f"or a list of at most {MAX_TRAINABLE_LIST} layer indices, each 0 to {MAX_LAYER_INDEX}")


def _from_dataclass(name: str, kind: str, spec: type, doc: str) -> type[BaseModel]:
    """A strict config section with ``kind`` plus every field of the dataclass ``spec``
    (types, constraints and defaults taken from it), validated by constructing ``spec``
    so its own checks (``__post_init__``) apply: the architecture is defined once."""
    from dataclasses import MISSING, fields
    from typing import get_type_hints

    hints = get_type_hints(spec, include_extras=True)
    definitions = {f.name: (hints[f.name], ... if f.default is MISSING else f.default) for f in fields(spec)}

    def check(self):
        spec(**{k: getattr(self, k) for k in definitions})
        return self

    return create_model(name, __base__=_Strict, __doc__=doc, kind=(Literal[kind], ...), **definitions,
                        __validators__={"_spec": model_validator(mode="after")(check)})


TransformerArchitecture = _from_dataclass(
    "TransformerArchitecture", "transformer", TransformerSpec, "An inline transformer (GPT / Llama / BERT family).")


class ResNetArchitecture(_Strict):
    kind: Literal["resnet"]
    # 1 to 8 stages of 1 to 10,000 blocks, at most 10,000 in all (a network of 80,000 takes 15 s)
    blocks: Annotated[list[Sized(MAX_BLOCKS)], Field(min_length=1, max_length=8)]
    bottleneck: bool = True
    image_size: Sized(MAX_IMAGE, 32)            # pixels, 32 to 2^16
    width: Sized(MAX_IMAGE, 32) | None = None   # pixels, 32 to 2^16
    classes: Sized(MAX_CLASSES)                 # 1 to 2^24
    channels: Sized(MAX_CHANNELS) = 3           # 1 to 2^16

    @model_validator(mode="after")
    def _depth(self):
        if sum(self.blocks) > MAX_BLOCKS:
            raise _FieldError("workload.architecture.blocks", list(self.blocks),
                              f"{sum(self.blocks)} blocks in all; at most {MAX_BLOCKS}")
        return self


class MobileNetV2Architecture(_Strict):
    kind: Literal["mobilenet-v2"]
    width_multiplier: Annotated[float, Field(gt=0.0, le=4.0)] = 1.0
    image_size: Sized(MAX_IMAGE, 32)            # pixels, 32 to 2^16
    classes: Sized(MAX_CLASSES)                 # 1 to 2^24
    dropout: bool = True


class DSCNNArchitecture(_Strict):
    kind: Literal["ds-cnn"]
    frames: Sized(MAX_FRAMES)                   # 1 to 2^20
    features: Sized(MAX_CHANNELS)               # 1 to 2^16
    channels: Sized(MAX_CHANNELS)               # 1 to 2^16
    blocks: Sized(MAX_BLOCKS)                   # 1 to 10,000
    classes: Sized(MAX_CLASSES)                 # 1 to 2^24


class MicroSpeechArchitecture(_Strict):
    kind: Literal["micro-speech"]
    frames: Sized(MAX_FRAMES) = 49              # 1 to 2^20
    features: Sized(MAX_CHANNELS) = 40          # 1 to 2^16
    filters: Sized(MAX_CHANNELS) = 8            # 1 to 2^16
    classes: Sized(MAX_CLASSES) = 4             # 1 to 2^24


Architecture = Annotated[
    Union[TransformerArchitecture, ResNetArchitecture, MobileNetV2Architecture,
          DSCNNArchitecture, MicroSpeechArchitecture],
    Field(discriminator="kind"),
]


class WorkloadSection(_Strict):
    """What is trained: a catalog ``model`` or an inline ``architecture``."""

    model: str | None = None
    architecture: Architecture | None = None
    seq_len: Sized(MAX_SEQ_LEN) | None = None    # 1 to 2^24
    modality: Literal["text", "image", "audio"] | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.model is None) == (self.architecture is None):
            raise ValueError("give exactly one of workload.model (a catalog name) or [workload.architecture]")
        kind = self.architecture.kind if self.architecture is not None else None
        if self.seq_len is None and kind == "transformer":
            raise _FieldError("workload.seq_len", "<missing>", "is required with an inline transformer "
                              "(tokens per sample; a catalog model has its own)")
        if self.modality is not None and kind is not None and (self.modality == "text") != (kind == "transformer"):
            allowed = ("a transformer reads tokens: text (or leave it out)" if kind == "transformer"
                       else f"a {kind} reads images or audio: image or audio (or leave it out)")
            raise _FieldError("workload.modality", self.modality, allowed)
        return self


class SystemSection(_Strict):
    """What it runs on. Links and node size default to the accelerator's catalog entry."""

    accelerator: str
    devices: Sized(MAX_DEVICES) = 1                    # 1 to 2^14
    devices_per_node: Sized(MAX_DEVICES) | None = None   # 1 to 2^14
    topology: Literal[TOPOLOGIES] = "auto"  # type: ignore[valid-type]
    intra_node_link: str | None = None
    inter_node_link: str | None = None
    oversubscription: Annotated[float, Field(ge=1.0, le=64.0)] = 1.0
    background_network_load: Fraction = 0.0
    cpu_cores_per_node: Sized(MAX_CORES) | None = None   # 1 to 2^16
    reserved_compute_fraction: Fraction = 0.0
    reserved_memory: Annotated[float, Field(ge=0.0, le=MAX_MEMORY)] = 0.0              # bytes, 0 to 2^60
    memory_budget: Annotated[float, Field(gt=0.0, le=MAX_MEMORY)] | None = None       # bytes, up to 2^60
    price_per_device_hour: Annotated[float, Field(ge=0.0, le=1e6)] | None = None      # US dollars (default: the catalog's)
    pricing: Literal["on-demand", "reserved"] = "on-demand"            # which catalog price (without a price given)
    pue: Annotated[float, Field(ge=1.0, le=3.0)] = 1.0                 # data-centre power usage effectiveness
    grid_kg_co2_per_kwh: Annotated[float, Field(ge=0.0, le=2.0)] | None = None   # grid carbon intensity (none: no CO2)
    power_budget_w: Annotated[float, Field(gt=0.0, le=1e6)] | None = None    # each device's average power (none: no wall)


class TrainingSection(_Strict):
    """How it is trained (docs/INTERFACE.md, ``[training]``)."""

    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    optimizer_state: Literal["fp32", "8bit"] = "fp32"
    precision: Literal[PRECISIONS] = "bf16-mixed"  # type: ignore[valid-type]
    loss_scaling: Literal[LOSS_SCALING] = "none"  # type: ignore[valid-type]
    loss_scale: Annotated[float, Field(ge=1.0, le=2.0**32)] = 65536.0
    gradient_dtype: Literal["param", "fp32"] = "param"   # gradients in the parameters' format, or fp32 (Megatron)
    recompute: Literal[RECOMPUTE] = "none"  # type: ignore[valid-type]
    attention: Literal[ATTENTION] = "flash"  # type: ignore[valid-type]
    # what a SwiGLU FFN keeps for the backward: PyTorch autograd's 4 tensors of the FFN's width,
    # or Megatron-LM's fused kernel's 3 (models/transformer.py, _swiglu)
    swiglu: Literal["eager", "fused"] = "eager"
    micro_batch: Sized(MAX_BATCH) = 1                  # 1 to 2^40
    global_batch: Sized(MAX_BATCH) | None = None       # 1 to 2^40 (also when defaulted)
    tensor_parallel: Sized(MAX_DEVICES) = 1            # 1 to 2^14
    pipeline_parallel: Sized(MAX_DEVICES) = 1          # 1 to 2^14
    virtual_stages: Annotated[int, Field(ge=1, le=1024)] = 1   # model chunks per pipeline rank (interleaved 1F1B)
    # how a transformer's layers split into pipeline stages: by FLOPs, or every layer (the embedding
    # and the head with the loss included) counting as one (Llama 3; optimizer/costmodel/layout.py)
    pipeline_split: Literal["balanced", "layers"] = "balanced"
    context_parallel: Sized(MAX_DEVICES) = 1           # ranks splitting each sequence, 1 to 2^14
    # how the attention layers exchange K and V: Transformer Engine's ring, hidden behind the
    # attention matmuls, or Llama 3's all-gather before the attention, exposed
    context_parallel_exchange: Literal["ring", "all_gather"] = "ring"
    data_parallel: Sized(MAX_DEVICES) | None = None    # 1 to 2^14
    sequence_parallel: bool = True
    # Megatron-LM's tensor-parallel backward collective overlapped with the weight-gradient GEMM
    # (on by default since Sep 2021: false replays earlier runs)
    tp_backward_overlap: bool = True
    # Transformer Engine's userbuffers overlap of the tensor-parallel all-gathers and reduce-scatters
    # with the GEMMs, forward and backward (NeMo's tp_comm_overlap; needs sequence parallelism)
    tp_comm_overlap: bool = False
    zero_stage: Annotated[int, Field(ge=0, le=3)] = 0
    gradient_clipping: bool = False
    # "all", "none", "last:N", "first:N" (N: 1 to 7 ASCII digits), or the indices of the
    # layers that train (at most 4096 of them, each 0 to 2^20)
    trainable: (Annotated[str, Field(pattern=TRAINABLE_PATTERN)]
                | Annotated[list[Sized(MAX_LAYER_INDEX, 0)], Field(max_length=MAX_TRAINABLE_LIST)]) = "all"
    local_steps: Sized(MAX_LOCAL_STEPS) = 1            # 1 to 2^20

    @field_validator("trainable", mode="before")
    @classmethod
    def _trainable(cls, value: object) -> object:
        """One message for every wrong ``trainable`` (the union's own errors name its members)."""
        if isinstance(value, str) and re.fullmatch(TRAINABLE_PATTERN, value):
            return value
        if (isinstance(value, list) and len(value) <= MAX_TRAINABLE_LIST
                and all(type(i) is int and 0 <= i <= MAX_LAYER_INDEX for i in value)):
            return value
        raise ValueError(TRAINABLE_ALLOWED)


class DataSection(_Strict):
    """How samples reach the accelerators (part 2: the pipeline race)."""

    workers: Annotated[int, Field(ge=0, le=4096)] = 8
    augmentation: Literal[AUGMENTATION] = "standard"  # type: ignore[valid-type]
    # where augmentation runs: CPU workers, or the accelerator (decode stays on the CPU)
    augmentation_on: Literal["cpu", "accelerator"] = "cpu"
    # data echoing (Choi et al. 2019): each fresh sample is trained on this many times
    echo: Annotated[int, Field(ge=1, le=64)] = 1
    # the fresh samples per hour the group learns from a stream (none: it learns all the time)
    samples_per_hour: Annotated[float, Field(gt=0.0, le=1e12)] | None = None


class Config(_Strict):
    """A whole configuration file, validated; catalog defaults resolved by properties."""

    workload: WorkloadSection
    system: SystemSection
    training: TrainingSection = TrainingSection()
    data: DataSection = DataSection()

    @model_validator(mode="after")
    def _consistent(self):
        t, s = self.training, self.system
        model = t.tensor_parallel * t.pipeline_parallel * t.context_parallel
        dp = t.data_parallel if t.data_parallel is not None else s.devices // model
        if model * dp != s.devices:
            cp = f" x {t.context_parallel}" if t.context_parallel > 1 else ""
            raise _FieldError("training.data_parallel", t.data_parallel,
                              f"tensor_parallel x pipeline_parallel x data_parallel"
                              f"{' x context_parallel' if cp else ''} = "
                              f"{t.tensor_parallel} x {t.pipeline_parallel} x {dp}{cp} must equal "
                              f"system.devices = {s.devices}")
        gb = t.global_batch if t.global_batch is not None else t.micro_batch * dp
        if gb > MAX_BATCH:
            raise _FieldError("training.global_batch", gb, f"micro_batch x data_parallel = {t.micro_batch} x {dp}"
                              f" = {gb} samples per step; at most 2^40 = {MAX_BATCH}")
        if gb % (t.micro_batch * dp):
            raise _FieldError("training.global_batch", gb,
                              f"must be a multiple of micro_batch x data_parallel = {t.micro_batch} x {dp}")
        if s.devices_per_node is not None and s.devices % s.devices_per_node:
            raise _FieldError("system.devices_per_node", s.devices_per_node,
                              f"must divide system.devices = {s.devices}")
        return self

    # Resolved values: what the cost model reads.
    @property
    def data_parallel(self) -> int:
        t = self.training
        return t.data_parallel or self.system.devices // (t.tensor_parallel * t.pipeline_parallel * t.context_parallel)

    @property
    def global_batch(self) -> int:
        return self.training.global_batch or self.training.micro_batch * self.data_parallel

    @property
    def micro_batches(self) -> int:
        """Micro-batches per pipeline per step (gradient-accumulation steps when pp = 1)."""
        return self.global_batch // (self.training.micro_batch * self.data_parallel)


class _FieldError(ValueError):
    """A cross-field rule broken: carries the dotted field it is about."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(allowed)
        self.field, self.value, self.allowed = field, value, allowed


def _fields_of(model: type[BaseModel] | None) -> list[str]:
    return sorted(model.model_fields) if model is not None else []


def _model_at(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at ``loc`` (for unknown-field hints)."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if model is None or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                      and issubclass(a, BaseModel)), None)
    return model


def first_error(exc: ValidationError, root: type[BaseModel] | None = None) -> InputError:
    """Turn pydantic's first error on a ``root`` model (a Config by default) into our
    one-line InputError."""
    err = exc.errors(include_url=False)[0]
    ctx_err = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_err, _FieldError):
        return InputError(ctx_err.field, ctx_err.value, ctx_err.allowed)
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in
                ("transformer", "resnet", "mobilenet-v2", "ds-cnn", "micro-speech")))
    field = ".".join(str(p) for p in loc)
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _fields_of(_model_at(loc, root or Config))
        return UnknownNameError(field, str(loc[-1]), known, "field") if known else \
            InputError(field, value, "unknown field")
    if kind == "missing":
        return InputError(field, "<missing>", "is required")
    if kind in ("finite_number",):
        return InputError(field, value, "must be a finite number (no NaN or infinity)")
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        return InputError(field + ".kind" if field else "kind", (value or {}).get("kind") if isinstance(value, dict) else value,
                          "must be one of transformer, resnet, mobilenet-v2, ds-cnn, micro-speech")
    msg = err["msg"]
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    msg = msg.replace("Input should be", "must be").replace("input should be", "must be")
    if isinstance(value, float) and math.isnan(value):
        msg = "must be a finite number (no NaN or infinity)"
    return InputError(field, value, msg[:1].lower() + msg[1:])


def parse_config(data: object, source: str = "") -> Config:
    """Validate already-parsed data into a :class:`Config`; errors are one-line InputErrors."""
    if not isinstance(data, dict):
        raise InputError("", type(data).__name__, "a configuration must be a table of sections", source=source)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc).with_source(source) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML, JSON or YAML configuration file."""
    from trainwall.core.fileformats import read_document

    return parse_config(read_document(path), str(path))
