"""The hardware catalog: accelerators, host CPUs and links, loaded from ``data/*.toml``.

Every figure carries its source in the data file (datasheets; "assumed" where the
vendor publishes nothing). Loading is cached: the files are read once per process (each
catalog is one registered cache entry of a few kB, refilled after
:func:`trainwall.core.caches.clear_all`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from trainwall.core.caches import bounded
from trainwall.core.errors import UnknownNameError

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")


@dataclass(frozen=True)
class Host:
    """The CPU side of a node: it decodes and augments samples (the data pipeline)."""

    key: str
    name: str
    accelerators: int
    cores: int
    core_speed: float
    storage_bandwidth: float
    source: str
    power_w: float = 0.0          # the node's power beside its accelerators (CPUs, NICs, fans); 0: none sourced
    power_source: str = ""


@dataclass(frozen=True)
class Link:
    """A link: ``bandwidth`` bytes/s per direction, ``latency`` seconds per hop, and the share
    of the line rate NCCL's collectives achieve on it (``achievable``, 1 where none is sourced)."""

    key: str
    name: str
    bandwidth: float
    latency: float
    scope: str
    shared_medium: bool
    source: str
    achievable: float = 1.0


@dataclass(frozen=True)
class Device:
    """An accelerator (or the core of a microcontroller) and its calibration constants.

    ``memory_bytes`` is what training can address; on a microcontroller that is SRAM,
    kept apart from ``flash_bytes`` (read-only at run time).
    """

    key: str
    name: str
    kind: str
    peak_flops: Mapping[str, float]
    reference_precision: str
    memory_bytes: float
    memory_bandwidth: float
    gemm_efficiency: float
    memory_bandwidth_efficiency: float
    host: Host
    host_link: Link
    source: str
    devices_per_node: int
    intra_node_link: str
    inter_node_link: str
    runtime_reserve_bytes: float
    flash_bytes: float = 0.0
    power_w: float = 0.0          # computing: the board's power limit (TDP) or run power; 0: none sourced
    idle_power_w: float = 0.0     # on, not computing (bubble, exposed communication, data stall)
    sleep_power_w: float = 0.0    # between learning bursts (0: as idle)
    radio_power_w: float = 0.0    # its own radio while communicating over a wireless link
    power_source: str = ""

    @property
    def reference_peak(self) -> float:
        """The one peak MFU is measured against (docs/DESIGN.md: one reference peak per track)."""
        return self.peak_flops[self.reference_precision]

    def peak(self, precision: str) -> float:
        """Dense peak FLOP/s for a number format; KeyError if the device lacks it."""
        return self.peak_flops[precision]


def _read(name: str) -> dict:
    text = resources.files("trainwall.hardware").joinpath("data", name).read_text()
    return tomllib.loads(text)


@bounded(1)  # one catalog
def hosts() -> Mapping[str, Host]:
    """All host CPUs by key."""
    return MappingProxyType({k: Host(key=k, **v) for k, v in _read("hosts.toml").items()})


@bounded(1)  # one catalog
def links() -> Mapping[str, Link]:
    """All links by key."""
    return MappingProxyType({k: Link(key=k, **v) for k, v in _read("links.toml").items()})


@bounded(1)  # one catalog
def devices() -> Mapping[str, Device]:
    """All accelerators by key, with their host and host link resolved."""
    out = {}
    for key, raw in _read("devices.toml").items():
        raw = dict(raw)
        host = hosts()[raw.pop("host")]
        host_link = links()[raw.pop("host_link")]
        peak = MappingProxyType(dict(raw.pop("peak_flops")))
        unknown = set(peak) - set(PRECISIONS)
        if unknown:
            raise ValueError(f"devices.toml [{key}] has unknown precisions {sorted(unknown)}")
        if raw["reference_precision"] not in peak:
            raise ValueError(f"devices.toml [{key}] reference_precision has no peak")
        out[key] = Device(key=key, peak_flops=peak, host=host, host_link=host_link, **raw)
    return MappingProxyType(out)


@dataclass(frozen=True)
class Price:
    """Dollars per device-hour (``data/prices.toml``): on demand, and reserved where known."""

    on_demand: float
    on_demand_source: str
    reserved: float | None = None
    reserved_source: str = ""


@bounded(1)  # one catalog
def prices() -> Mapping[str, Price]:
    """Rental prices by accelerator key (a device without an entry has none)."""
    return MappingProxyType({k: Price(**v) for k, v in _read("prices.toml").items()})


def device(name: str, field: str = "system.accelerator") -> Device:
    """Look up a device; an unknown name raises with the closest known names."""
    try:
        return devices()[name]
    except KeyError:
        raise UnknownNameError(field, name, devices(), "accelerator") from None


def link(name: str, field: str = "system.link") -> Link:
    """Look up a link; an unknown name raises with the closest known names."""
    try:
        return links()[name]
    except KeyError:
        raise UnknownNameError(field, name, links(), "link") from None


def host(name: str, field: str = "system.host") -> Host:
    """Look up a host CPU; an unknown name raises with the closest known names."""
    try:
        return hosts()[name]
    except KeyError:
        raise UnknownNameError(field, name, hosts(), "host") from None
