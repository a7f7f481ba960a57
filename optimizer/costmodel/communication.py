"""Communication on the topology: tensor-parallel all-reduces, pipeline sends, gradient sync.

Each collective is planned by :mod:`trainwall.hardware.collectives` on the topology graph
for the rank groups of :func:`~trainwall.optimizer.costmodel.layout.parallel_groups`
(seconds = bytes x seconds-per-byte + latency). Per micro-batch, with S_act the hidden
state of one micro-batch (tokens x hidden x activation bytes):

* tensor parallel (Megatron-LM, Shoeybi et al. 2019): per block 2 all-reduces of S_act
  forward and 2 backward (+2 recomputing the forward under full recompute), for the
  stage with the most split blocks; the backward ones hidden behind the weight-gradient
  GEMMs (Megatron's default), and with Transformer Engine's overlap all of them behind
  the GEMMs but a chunk (:func:`_tensor_parallel`);
* pipeline: S_act / tp sent forward and its gradient back (the reverse direction of each
  link: a first stage's NIC sends one, a middle stage's two), once per model chunk. Each
  tensor-parallel rank sends its 1/tp: under sequence parallelism the tensor is split
  already; without it, Megatron-LM's scatter/gather optimization splits it and the receiving
  ranks all-gather it over the node's links (Narayanan et al. 2021, section 4.1, in our
  words: a layer's output is replicated on the t tensor-parallel ranks, so each sends one
  of t equal chunks through its own InfiniBand card and the next stage's ranks rebuild the
  tensor with an all-gather over NVLink; Megatron-LM's default since, switched off by
  ``--no-scatter-gather-tensors-in-pipeline``) (:func:`_pipeline`);
* context parallel: each attention layer's K/V all-gathered forward and backward and its
  gradients reduce-scattered over the ranks sharing a sequence, hidden behind the attention
  matmuls (:func:`_context_parallel`); the tensor- and pipeline-parallel messages carry a
  rank's s / cp tokens;
* data parallel, ZeRO 0-2: one all-reduce of the trainable gradients per step (per
  ``local_steps`` steps), hidden behind the backward pass up to
  ``OVERLAP_EFFICIENCY`` x the shortest stage's backward;
* data parallel, ZeRO-3 (Rajbhandari et al. 2020): the weights all-gathered for the
  forward and the backward and the gradients reduce-scattered, per micro-batch,
  hidden up to ``OVERLAP_EFFICIENCY`` x t_stage.

Network load is counted per network link, in link-seconds (bytes crossing it / its
full capacity), summed over the step's collectives link by link: a step's traffic is
``a_l m + b_l`` on link l (per micro-batch and fixed parts), and the utilisation wall
reads the busiest single link, max_l (a_l m + b_l) / step (docs/DESIGN.md). Two
collectives whose busiest links differ (a middle stage's pipeline NIC, a first stage's
gradient NIC) do not add up on one link. Links whose (a_l, b_l) another link matches or
exceeds in both parts can never be the busiest and are dropped (:func:`envelope`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from trainwall.core.caches import bounded
from trainwall.hardware import collectives
from trainwall.hardware.collectives import CollectivePlan, LinkShares
from trainwall.models.transformer import TransformerSpec
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
    cp_per_micro_batch_s: float = 0.0          # context parallelism's K/V exchange, all of it
    cp_exposed_per_micro_batch_s: float = 0.0  # of which the attention matmuls do not hide
    dp_fixed_s: float = 0.0
    dp_per_micro_batch_s: float = 0.0
    dp_exposed_fixed_s: float = 0.0
    dp_exposed_per_micro_batch_s: float = 0.0
    network_links: tuple[tuple[float, float], ...] = ()   # (a_l, b_l) link-seconds per micro-batch, per step
    data_parallel_bytes: float = 0.0
    data_parallel_plan: CollectivePlan | None = None
    algorithms: tuple[tuple[str, str], ...] = ()
    bottleneck_link: str = ""
    tp_all_per_micro_batch_s: float = 0.0     # the tensor-parallel collectives, all of them (tp_per_...: exposed)


class _LinkLoads:
    """Link-seconds per network link, per micro-batch and per step, summed collective by collective."""

    def __init__(self) -> None:
        self.entries: list[tuple[CollectivePlan, float, bool]] = []

    def add(self, plan: CollectivePlan, nbytes: float, per_micro_batch: bool) -> None:
        if plan.network_shares:
            self.entries.append((plan, nbytes, per_micro_batch))

    def links(self) -> tuple[tuple[float, float], ...]:
        """(a_l, b_l) of every link that can be the busiest. Links that every collective loads
        alike (a signature: one share per collective) carry the same traffic, so the sums run
        over the few distinct signatures, not the thousands of links."""
        if not self.entries:
            return ()
        signatures = _signatures(tuple(plan.network_shares for plan, _, _ in self.entries))
        return envelope([(sum(n * s for (_, n, mb), s in zip(self.entries, sig) if mb),
                          sum(n * s for (_, n, mb), s in zip(self.entries, sig) if not mb)) for sig in signatures])


#: Bound of the signature cache: keyed by the collectives' link shares, which do not depend on
#: the fabric's background load, so a cloud/3 variant family (about 190 distinct sets) fits.
SIGNATURES_MAXSIZE = 512


@bounded(SIGNATURES_MAXSIZE)
def _signatures(shares: tuple[LinkShares, ...]) -> tuple[tuple[float, ...], ...]:
    """The distinct tuples (share of collective 1, share of collective 2, ...) over the network
    links any collective crosses (``shares``: each collective's ``network_shares``)."""
    per_edge: dict = defaultdict(lambda: [0.0] * len(shares))
    for k, plan_shares in enumerate(shares):
        for edge, share in plan_shares.numbered():
            per_edge[edge][k] += share
    return tuple(sorted({tuple(v) for v in per_edge.values()}))


def envelope(links: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """The links that can be the busiest at some m >= 0: no other (a', b') has a' >= a and
    b' >= b (duplicates kept once), sorted by a descending."""
    kept: list[tuple[float, float]] = []
    for a, b in sorted(set(links), key=lambda ab: (-ab[0], -ab[1])):
        if all(b > kb for _, kb in kept):      # every kept link has a' >= a: keep only a larger b
            kept.append((a, b))
    return tuple(kept)


def communication(plan: ResolvedPlan, stages: Stages, t_stage: float) -> Communication:
    """The step's communication (module docstring); ``t_stage`` the slowest stage's time."""
    tp, pp, dp, cp = plan.tensor_parallel, plan.pipeline_parallel, plan.data_parallel, plan.context_parallel
    chunks = plan.schedule.chunks
    tp_groups, dp_groups, pp_pairs, cp_groups = parallel_groups(tp, dp, pp, wrap=chunks > 1, cp=cp)
    layers = plan.network.layers
    act_elems = layers[1].input.elements if (plan.family == "transformer" and len(layers) > 2) else 0.0
    act_msg = act_elems * plan.micro_batch / cp * plan.policy.activation_bytes    # a rank's s / cp tokens
    algorithms: list[tuple[str, str]] = []
    loads = _LinkLoads()
    tp_all, tp_mb, pp_mb, link = 0.0, 0.0, 0.0, ""
    if tp > 1:
        coll = collectives.all_reduce(plan.topology, tp_groups, plan.background)
        algorithms.append(("tensor_parallel", coll.algorithm))
        tp_all, tp_mb, traffic = _tensor_parallel(plan, stages, coll.time(act_msg))
        loads.add(coll, traffic * act_msg, per_micro_batch=True)
        link = coll.bottleneck_link
    if pp > 1:
        coll, pp_mb = _pipeline(plan, pp_pairs, tp_groups, act_msg, loads)
        algorithms.append(("pipeline", coll.algorithm))
        link = coll.bottleneck_link or link
    cp_mb, cp_exposed = 0.0, 0.0
    if cp > 1:
        coll, cp_mb, cp_exposed = _context_parallel(plan, cp_groups, stages, loads)
        algorithms.append(("context_parallel", coll.algorithm))
        link = link or coll.bottleneck_link
    sync = _data_parallel(plan, dp_groups, stages, t_stage, loads)
    if sync is None:
        return Communication(tp_mb, pp_mb, cp_mb, cp_exposed, network_links=loads.links(),
                             algorithms=tuple(algorithms), bottleneck_link=link, tp_all_per_micro_batch_s=tp_all)
    coll = sync.data_parallel_plan
    if coll.network_shares or not link:
        link = coll.bottleneck_link or link
    return Communication(tp_mb, pp_mb, cp_mb, cp_exposed, sync.dp_fixed_s, sync.dp_per_micro_batch_s,
                         sync.dp_exposed_fixed_s, sync.dp_exposed_per_micro_batch_s, loads.links(),
                         sync.data_parallel_bytes, coll, (*algorithms, ("data_parallel", coll.algorithm)), link,
                         tp_all)


def _pipeline(plan: ResolvedPlan, pp_pairs, tp_groups, act_msg: float, loads: _LinkLoads):
    """The pipeline's sends per micro-batch (module docstring): (the forward sends' plan, seconds).
    Activations forward and their gradients back, once per model chunk (interleaving), each rank
    sending its 1/tp; without sequence parallelism the receiving tensor-parallel group
    all-gathers the whole tensor (the scatter/gather optimization)."""
    chunks, tp = plan.schedule.chunks, plan.tensor_parallel
    msg = act_msg / tp
    coll = collectives.point_to_point(plan.topology, pp_pairs, plan.background)
    back = collectives.point_to_point(plan.topology, tuple((b, a) for a, b in pp_pairs), plan.background)
    seconds = chunks * (coll.time(msg) + back.time(msg))
    loads.add(coll, chunks * msg, per_micro_batch=True)
    loads.add(back, chunks * msg, per_micro_batch=True)
    if tp > 1 and not plan.sequence_parallel:
        gather = collectives.all_gather(plan.topology, tp_groups, plan.background)
        seconds += chunks * 2 * gather.time(act_msg)
        loads.add(gather, chunks * 2 * act_msg, per_micro_batch=True)
    return coll, seconds


#: Transformer Engine's pipelined overlap splits each GEMM's reduce-scatter into 4 chunks and
#: exposes one (``num_splits`` default 4; NeMo docs, "Communication Overlap": "which exposes one
#: reduce-scatter chunk").
EXPOSED_CHUNK = 1 / 4


def _tensor_parallel(plan: ResolvedPlan, stages: Stages, collective_s: float) -> tuple[float, float, float]:
    """Per micro-batch: (all the tensor-parallel collectives' seconds, the exposed ones, their
    count on the busiest stage), each collective of ``collective_s`` (Megatron-LM: per block 2
    forward, 2 more recomputing the forward under full recompute, 2 backward; Shoeybi et al. 2019).

    Hidden behind the same block's GEMMs, per pipeline stage (its blocks alike):
    * backward: Megatron-LM overlaps the input gradient's collective with the weight-gradient
      GEMM (``tp_backward_overlap``, its default since Sep 2021: commit cf7efd4f; Korthikanti et
      al. 2022, section 6.2); Transformer Engine (``tp_comm_overlap``) hides both behind the
      backward GEMMs (all-gather with dgrad, reduce-scatter with wgrad);
    * forward: only Transformer Engine's overlap, split into ring steps with the GEMMs, one
      reduce-scatter chunk of :data:`EXPOSED_CHUNK` exposed per collective."""
    engine, megatron = plan.tp_overlap
    forward_passes = 2 if plan.recompute == "full" else 1
    pair = 2 * collective_s
    worst_exposed = worst_count = 0.0
    for (a, b), (gemm_fwd, gemm_bwd, wgrad) in zip(plan.bounds, stages.gemm):
        blocks = sum(1 for layer in plan.network.layers[a:b] if layer.tensor_parallel)
        if not blocks:
            continue
        hide_fwd, hide_bwd = (gemm_fwd / blocks if engine else 0.0), \
            (gemm_bwd if engine else wgrad if megatron else 0.0) / blocks
        forward = max(0.0, pair - hide_fwd) + (2 * EXPOSED_CHUNK * collective_s if engine else 0.0)
        worst_exposed = max(worst_exposed, blocks * (forward_passes * min(pair, forward) + max(0.0, pair - hide_bwd)))
        worst_count = max(worst_count, blocks * 2 * (forward_passes + 1))
    return worst_count * collective_s, worst_exposed, worst_count


def kv_exchange_bytes(plan: ResolvedPlan) -> float:
    """The K/V buffer one attention layer's context-parallel group exchanges per micro-batch:
    the whole sequence's keys and values of this tensor-parallel rank's KV heads,
    2 s (KV heads / min(tp, KV heads)) head_dim x micro-batch x activation bytes (GQA's KV heads
    are split over tp, and replicated where tp exceeds them)."""
    spec = TransformerSpec(**plan.workload.arch)
    kv_per_rank = spec.kv * spec.hd / min(plan.tensor_parallel, spec.kv)
    return 2 * plan.network.tokens_per_sample * kv_per_rank * plan.micro_batch * plan.policy.activation_bytes


def _context_parallel(plan: ResolvedPlan, cp_groups, stages: Stages, loads: _LinkLoads):
    """Context parallelism's K/V exchange per micro-batch: (plan, seconds, exposed seconds).

    Each attention layer all-gathers the sequence's K and V around the group for the forward
    and again for the backward, and reduce-scatters their gradients, (n - 1)/n of the buffer
    each (Transformer Engine's ring exchange: every rank sends its chunk n - 1 times; Liu et al.
    2023), one more all-gather where the attention is recomputed: 3 or 4 x per layer. Exposed:
    * ``ring`` (the default): the ring runs beside the attention of the chunk already received,
      so only what exceeds the stage's attention matmuls is exposed, for the stage where that is most;
    * ``all_gather`` (Llama 3, Dubey et al. 2024, section 3.3.2: K and V all-gathered first, then
      the attention of the local query chunks; chosen for its flexibility with attention masks
      and because GQA's K and V are small): the same bytes, none of them hidden."""
    coll = collectives.all_gather(plan.topology, cp_groups, plan.background)
    passes, kv = 3 + (plan.recompute in ("selective", "full")), kv_exchange_bytes(plan)
    per_layer = passes * coll.time(kv)
    layers = plan.network.layers
    attention_layers = [sum(1 for layer in layers[a:b] if any(op.kind == "attention" for op in layer.ops))
                        for a, b in plan.bounds]
    loads.add(coll, max(attention_layers) * passes * kv, per_micro_batch=True)
    total = max(attention_layers) * per_layer
    if plan.cp_exchange == "all_gather":
        return coll, total, total
    exposed = max(max(0.0, n * per_layer - hidden) for n, hidden in zip(attention_layers, stages.attention))
    return coll, total, exposed


def _data_parallel(plan: ResolvedPlan, dp_groups, stages: Stages, t_stage: float,
                   loads: _LinkLoads) -> Communication | None:
    """The data-parallel collective of the step (None without data parallelism or training);
    its network traffic is added to ``loads``."""
    trainable = max(s.trainable for s in stages.states)
    if plan.data_parallel * plan.context_parallel <= 1 or not trainable > 0:
        return None
    if plan.zero_stage >= 3:
        wbytes = max(s.params for s in stages.states) * plan.policy.weight_bytes
        coll = collectives.all_gather(plan.topology, dp_groups, plan.background,
                                      _stage_weights(plan, [s.params for s in stages.states]))
        # all-gather weights for forward and backward, reduce-scatter gradients: per micro-batch
        dp_mb = 3 * coll.time(wbytes) / plan.local_steps
        loads.add(coll, 3 * wbytes / plan.local_steps, per_micro_batch=True)
        return Communication(0.0, 0.0, dp_per_micro_batch_s=dp_mb,
                             dp_exposed_per_micro_batch_s=max(0.0, dp_mb - OVERLAP_EFFICIENCY * t_stage),
                             data_parallel_bytes=wbytes, data_parallel_plan=coll)
    coll = collectives.all_reduce(plan.topology, dp_groups, plan.background,
                                  _stage_weights(plan, [s.trainable for s in stages.states]))
    volume = trainable * plan.policy.grad_bytes
    dp_fixed = coll.time(volume) / plan.local_steps
    loads.add(coll, volume / plan.local_steps, per_micro_batch=False)
    return Communication(0.0, 0.0, dp_fixed_s=dp_fixed,
                         dp_exposed_fixed_s=max(0.0, dp_fixed - OVERLAP_EFFICIENCY * min(stages.backward)),
                         data_parallel_bytes=volume, data_parallel_plan=coll)



def _stage_weights(plan: ResolvedPlan, amounts: list[float]) -> tuple[float, ...] | None:
    """Each data-parallel group's buffer as a fraction of the largest stage's: the groups are
    stage-major (:func:`~trainwall.optimizer.costmodel.layout.parallel_groups`), tp per stage,
    and each carries its own stage's gradients (or weights). None when all stages are equal."""
    largest = max(amounts)
    if all(a == largest for a in amounts):
        return None
    return tuple(a / largest for a in amounts for _ in range(plan.tensor_parallel))
