"""The training cost model: one configuration in, every metric out.

This is the only place the model of the world is evaluated; the CLI, the optimiser,
the grader, the plots and the explainer all call :func:`evaluate`. Every output is
in SI units. The pieces, each documented where it lives:

* resolution and every input check - :mod:`.resolve` (config -> :class:`ResolvedPlan`);
* the pipeline schedule - :mod:`.schedule` (1F1B: bubble, micro-batches in flight);
* memory per device - :mod:`trainwall.optimizer.memory` (ZeRO; saved tensors), per
  stage in :mod:`.stages`;
* compute per layer - :mod:`trainwall.optimizer.compute` (roofline per op);
* communication - :mod:`trainwall.hardware.collectives` on the topology graph, per
  parallelism in :mod:`.communication`;
* the input pipeline - :mod:`trainwall.optimizer.datapipe` (max-flow / min-cut), its
  capacities in :mod:`.inputs`;
* numerical stability - :mod:`trainwall.optimizer.stability`;
* the step structure (every cost as a function of m) - :mod:`.structure`; the metrics
  read off it - :mod:`.evaluation`, :mod:`.metrics`; the walls hit - :mod:`.verdicts`.

Step time (one optimizer step, Narayanan et al. 2021 for the pipeline terms):

    step = m * t_stage + (p - 1) * t_stage            (compute + pipeline bubble)
         + tensor-parallel all-reduces                (exposed: on the critical path)
         + pipeline point-to-point sends              (exposed)
         + max(0, t_dp - overlap * t_backward)         (gradient sync hidden behind backward)
         + optimizer update + data stall

with m micro-batches per pipeline and t_stage the slowest stage's forward + backward
+ recompute time for one micro-batch. MFU = model FLOPs per step / (step x devices x
the device's ONE reference peak); HFU adds recompute (PaLM, appendix B). Scaling
efficiency = T_1 / (N T_N), T_1 being the same global batch on one device.
"""

from trainwall.optimizer.costmodel.communication import OVERLAP_EFFICIENCY
from trainwall.optimizer.costmodel.evaluation import check_stability, evaluate
from trainwall.optimizer.costmodel.inputs import AUGMENT_BYTES_PER_ELEMENT_PASS
from trainwall.optimizer.costmodel.layout import parallel_groups, stage_bounds
from trainwall.optimizer.costmodel.metrics import Memory, Metrics, StepTime, Violation
from trainwall.optimizer.costmodel.resolve import (InputPlan, ResolvedPlan, device_capacity, resolve,
                                                   resolve_network, resolve_topology, resolve_workload,
                                                   trainable_mask)
from trainwall.optimizer.costmodel.schedule import OneFOneB, PipelineSchedule
from trainwall.optimizer.costmodel.stages import activation_case, device_params
from trainwall.optimizer.costmodel.structure import StepStructure, step_structure, structure_of
from trainwall.optimizer.walls import intrinsic_violations as violations

#: The former private name of :func:`device_params` (``optimizer/state_audit.py`` imports it).
_device_params = device_params

__all__ = [
    "AUGMENT_BYTES_PER_ELEMENT_PASS", "OVERLAP_EFFICIENCY", "InputPlan", "Memory", "Metrics", "OneFOneB",
    "PipelineSchedule", "ResolvedPlan", "StepStructure", "StepTime", "Violation", "activation_case",
    "check_stability", "device_capacity", "device_params", "evaluate", "parallel_groups", "resolve",
    "resolve_network", "resolve_topology", "resolve_workload", "stage_bounds", "step_structure", "structure_of",
    "trainable_mask", "violations",
]
