"""The input pipeline's side of a step: stage capacities and on-accelerator augmentation.

The flow network itself (max-flow / min-cut, the longest pole) is
:mod:`trainwall.optimizer.datapipe`; here are its capacities for one host, in samples/s.
"""

from __future__ import annotations

from trainwall.optimizer.compute import Rates
from trainwall.optimizer.costmodel.resolve import InputPlan

#: Bytes of memory traffic per element and pass of augmentation on the accelerator:
#: read and write the sample as fp32 (see ``models/data/modalities.toml``).
AUGMENT_BYTES_PER_ELEMENT_PASS = 8


def input_rates(inputs: InputPlan) -> tuple[float, float, float]:
    """(storage, cpu, host link) capacities of one host's input pipeline, in samples/s.

        storage   = storage_bandwidth / sample_bytes
        cpu       = max(1, min(workers, cores)) x core_speed / cpu_seconds
        host link = accelerators per host x link_bandwidth / device_bytes

    The CPU stage runs min(workers, cores) worker processes (at least the main process
    when ``workers = 0``); with ``augmentation_on = "accelerator"`` the CPU only decodes.
    """
    p = inputs
    cpu_rate = max(1, min(p.workers, p.cores)) * p.core_speed / p.cpu_seconds
    storage_rate = p.storage_bandwidth / p.sample_bytes if p.sample_bytes else float("inf")
    link_rate = p.accelerators_per_host * p.link_bandwidth / p.device_bytes if p.device_bytes else float("inf")
    return storage_rate, cpu_rate, link_rate


def accelerator_augmentation_s(inputs: InputPlan, rates: Rates, micro_batch: int) -> float:
    """Seconds per micro-batch the accelerator spends augmenting, when augmentation runs there.

    A memory-bound roofline: passes x device_bytes (uint8 elements) x 8 B / bandwidth.
    """
    if not inputs.accelerator_passes:
        return 0.0
    per_sample = (inputs.accelerator_passes * inputs.device_bytes * AUGMENT_BYTES_PER_ELEMENT_PASS
                  / rates.bandwidth)
    return per_sample * micro_batch
