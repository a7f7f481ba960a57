"""Where layers and ranks go: pipeline stage bounds and the parallel rank groups."""

from __future__ import annotations

from trainwall.core.caches import bounded
from trainwall.models.ir import Network


def stage_bounds(network: Network, pp: int) -> tuple[tuple[int, int], ...]:
    """Contiguous [start, end) layer ranges of the pipeline stages, the slowest as light as possible.

    The linear-partition problem: split the layers' FLOPs into ``pp`` contiguous,
    non-empty runs minimising the largest run. The least feasible bound is found by
    bisection on the greedy test "fits in ``pp`` runs of at most X" (each test O(L));
    runs are then split further, never raising the bound, until there are exactly
    ``pp``. Megatron-LM's layout (equal blocks, embedding on the first stage, the head
    on the last) is the optimum this finds for a uniform stack. ``pp`` must be at most
    the number of layers (:func:`trainwall.optimizer.costmodel.resolve.resolve` checks).
    """
    return _linear_partition(_layer_costs(network), pp)


def layer_count_bounds(layers: int, pp: int) -> tuple[tuple[int, int], ...]:
    """``layers`` split into ``pp`` contiguous stages of equal count (``layers`` a multiple of ``pp``).

    ``training.pipeline_split = "layers"``: the embedding and the head with its loss each count
    as one layer, as a transformer block does (Dubey et al. 2024, "The Llama 3 Herd of Models",
    section 3.3.2: "one Transformer layer is reduced each from the first and the last stages ...
    the first model chunk on the first stage has only the embedding, and the last model chunk
    on the last stage has only output projection and loss calculation"; Megatron-LM's
    ``account_for_embedding_in_pipeline_split`` and ``account_for_loss_in_pipeline_split``).
    With v model chunks per rank the chunks hold layers / (p v) layers each; rank i holds v of
    them, so its totals are those of a contiguous run of layers / p layers, as here."""
    size = layers // pp
    return tuple((i * size, (i + 1) * size) for i in range(pp))


@bounded(256)
def _layer_costs(network: Network) -> tuple[float, ...]:
    """Each layer's forward FLOPs (at least 1, so an empty layer still takes a place)."""
    return tuple(max(layer.flops, 1.0) for layer in network.layers)


@bounded(256)
def _linear_partition(costs: tuple[float, ...], parts: int) -> tuple[tuple[int, int], ...]:
    def greedy(bound: float) -> list[tuple[int, int]]:
        runs, start, acc = [], 0, 0.0
        for i, c in enumerate(costs):
            if acc + c > bound and i > start:
                runs.append((start, i))
                start, acc = i, 0.0
            acc += c
        runs.append((start, len(costs)))
        return runs

    lo, hi = max(costs), sum(costs)
    for _ in range(100):
        if hi - lo <= 1e-9 * hi:
            break
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if len(greedy(mid)) <= parts else (mid, hi)
    runs = greedy(hi)
    while len(runs) < parts:  # split the longest run at its last layer: the maximum cannot grow
        k = max(range(len(runs)), key=lambda j: (runs[j][1] - runs[j][0], -j))
        a, b = runs[k]
        runs[k:k + 1] = [(a, b - 1), (b - 1, b)]
    return tuple(runs)


@bounded(64)   # one 4,096-GPU layout is ~720 kB of rank tuples; cloud/3 has 34 layouts
def parallel_groups(tp: int, dp: int, pp: int, wrap: bool = False, cp: int = 1):
    """Rank layout t + tp (c + cp (d + dp p)) (Megatron-LM's order: tensor fastest, then
    context, then data, then pipeline). Returns the tensor-parallel groups, the gradient groups
    (every rank of a stage holding the same weights: data x context), the pipeline pairs and the
    context-parallel groups (the ranks sharing each sequence).
    ``wrap``: the last stage also sends to the first (interleaving: a micro-batch's next chunk)."""
    rank = lambda t, c, d, p: t + tp * (c + cp * (d + dp * p))  # noqa: E731
    replicas = [(d, c) for d in range(dp) for c in range(cp)]
    tp_groups = tuple(tuple(rank(t, c, d, p) for t in range(tp)) for p in range(pp) for d, c in replicas)
    dp_groups = tuple(tuple(rank(t, c, d, p) for d, c in replicas) for p in range(pp) for t in range(tp))
    cp_groups = tuple(tuple(rank(t, c, d, p) for c in range(cp)) for p in range(pp) for d in range(dp) for t in range(tp))
    pp_pairs = tuple((rank(t, c, d, p), rank(t, c, d, p + 1)) for p in range(pp - 1) for d, c in replicas
                     for t in range(tp))
    if wrap and pp > 1:
        pp_pairs += tuple((rank(t, c, d, pp - 1), rank(t, c, d, 0)) for d, c in replicas for t in range(tp))
    return tp_groups, dp_groups, pp_pairs, cp_groups
