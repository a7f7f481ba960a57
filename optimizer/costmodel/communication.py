"""Communication on the topology: tensor-parallel all-reduces, pipeline sends, gradient sync.

Each collective is planned by :mod:`trainwall.hardware.collectives` on the topology graph
for the rank groups of :func:`~trainwall.optimizer.costmodel.layout.parallel_groups`
(seconds = bytes x seconds-per-byte + latency). Per micro-batch, with S_act the hidden
state of one micro-batch (tokens x hidden x activation bytes):

* tensor parallel (Megatron-LM, Shoeybi et al. 2019): per block 2 all-reduces of S_act
  forward and 2 backward (+2 recomputing the forward under full recompute), for the
  stage with the most split blocks;
* pipeline: S_act (/ tp under sequence parallelism) sent forward and its gradient back;
* data parallel, ZeRO 0-2: one all-reduce of the trainable gradients per step (per
  ``local_steps`` steps), hidden behind the backward pass up to
  ``OVERLAP_EFFICIENCY`` x the shortest stage's backward;
* data parallel, ZeRO-3 (Rajbhandari et al. 2020): the weights all-gathered for the
  forward and the backward and the gradients reduce-scattered, per micro-batch,
  hidden up to ``OVERLAP_EFFICIENCY`` x t_stage.

Network load is counted in link-seconds on the busiest network link (bytes crossing
it / its capacity) for the utilisation wall.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwall.hardware import collectives
from trainwall.hardware.collectives import CollectivePlan
from trainwall.optimizer.costmodel.layout import parallel_groups
from trainwall.optimizer.costmodel.resolve import ResolvedPlan
from trainwall.optimizer.costmodel.stages import Stages

#: Calibration constant shared by every run: the fraction of the backward pass that
#: actually hides gradient communication (bucketing leaves the first bucket's
#: all-reduce and the last layers' exposed; PyTorch DDP / Megatron overlap).
OVERLAP_EFFICIENCY = 0.8


@dataclass(frozen=True)
class Communication:
    """Seconds and link-seconds of a step's communication."""

    tp_per_micro_batch_s: float
    pp_per_micro_batch_s: float
    dp_fixed_s: float = 0.0
    dp_per_micro_batch_s: float = 0.0
    dp_exposed_fixed_s: float = 0.0
    dp_exposed_per_micro_batch_s: float = 0.0
    network_per_micro_batch: float = 0.0
    network_fixed: float = 0.0
    data_parallel_bytes: float = 0.0
    data_parallel_plan: CollectivePlan | None = None
    algorithms: tuple[tuple[str, str], ...] = ()
    bottleneck_link: str = ""


def _network_share(plan: CollectivePlan, nbytes: float) -> float:
    """Link-seconds ``nbytes`` of this collective put on its busiest network link."""
    return nbytes * plan.network_load_per_byte / plan.network_capacity


def communication(plan: ResolvedPlan, stages: Stages, t_stage: float) -> Communication:
    """The step's communication (module docstring); ``t_stage`` the slowest stage's time."""
    tp, pp, dp = plan.tensor_parallel, plan.pipeline_parallel, plan.data_parallel
    tp_groups, dp_groups, pp_pairs = parallel_groups(tp, dp, pp)
    layers = plan.network.layers
    act_elems = layers[1].input.elements if (plan.family == "transformer" and len(layers) > 2) else 0.0
    act_msg = act_elems * plan.micro_batch * plan.policy.activation_bytes
    algorithms: list[tuple[str, str]] = []
    net_mb, tp_mb, pp_mb, link = 0.0, 0.0, 0.0, ""
    if tp > 1:
        coll = collectives.all_reduce(plan.topology, tp_groups, plan.background)
        algorithms.append(("tensor_parallel", coll.algorithm))
        per_layer = (2 + 2 + (2 if plan.recompute == "full" else 0))
        n_blocks = max(sum(1 for layer in layers[a:b] if any(op.tp for op in layer.ops)) for a, b in plan.bounds)
        tp_mb = n_blocks * per_layer * coll.time(act_msg)
        if coll.network_capacity:
            net_mb += _network_share(coll, n_blocks * per_layer * act_msg)
        link = coll.bottleneck_link
    if pp > 1:
        msg = act_msg / (tp if plan.sequence_parallel else 1)
        coll = collectives.point_to_point(plan.topology, pp_pairs, plan.background)
        algorithms.append(("pipeline", coll.algorithm))
        pp_mb = 2 * coll.time(msg)
        if coll.network_capacity:
            net_mb += _network_share(coll, 2 * msg)
        link = coll.bottleneck_link or link
    sync = _data_parallel(plan, dp_groups, stages, t_stage)
    if sync is None:
        return Communication(tp_mb, pp_mb, network_per_micro_batch=net_mb, algorithms=tuple(algorithms),
                             bottleneck_link=link)
    coll = sync.data_parallel_plan
    if coll.network_capacity or not link:
        link = coll.bottleneck_link or link
    return Communication(tp_mb, pp_mb, sync.dp_fixed_s, sync.dp_per_micro_batch_s, sync.dp_exposed_fixed_s,
                         sync.dp_exposed_per_micro_batch_s, net_mb + sync.network_per_micro_batch,
                         sync.network_fixed, sync.data_parallel_bytes, coll,
                         (*algorithms, ("data_parallel", coll.algorithm)), link)


def _data_parallel(plan: ResolvedPlan, dp_groups, stages: Stages, t_stage: float) -> Communication | None:
    """The data-parallel collective of the step (None without data parallelism or training)."""
    trainable = max(s.trainable for s in stages.states)
    if plan.data_parallel <= 1 or not trainable > 0:
        return None
    if plan.zero_stage >= 3:
        coll = collectives.all_gather(plan.topology, dp_groups, plan.background)
        wbytes = max(s.params for s in stages.states) * plan.policy.weight_bytes
        # all-gather weights for forward and backward, reduce-scatter gradients: per micro-batch
        dp_mb = 3 * coll.time(wbytes) / plan.local_steps
        net = _network_share(coll, 3 * wbytes / plan.local_steps) if coll.network_capacity else 0.0
        return Communication(0.0, 0.0, dp_per_micro_batch_s=dp_mb,
                             dp_exposed_per_micro_batch_s=max(0.0, dp_mb - OVERLAP_EFFICIENCY * t_stage),
                             network_per_micro_batch=net, data_parallel_bytes=wbytes, data_parallel_plan=coll)
    coll = collectives.all_reduce(plan.topology, dp_groups, plan.background)
    volume = trainable * plan.policy.grad_bytes
    dp_fixed = coll.time(volume) / plan.local_steps
    net = _network_share(coll, volume / plan.local_steps) if coll.network_capacity else 0.0
    return Communication(0.0, 0.0, dp_fixed_s=dp_fixed,
                         dp_exposed_fixed_s=max(0.0, dp_fixed - OVERLAP_EFFICIENCY * min(stages.backward)),
                         network_fixed=net, data_parallel_bytes=volume, data_parallel_plan=coll)
