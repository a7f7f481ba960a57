"""The loss's memory: its backward's two fp32 gradients, and a head checkpointing keeps.

With a large vocabulary the step's peak is the first op of the backward, PyTorch's
``log_softmax_backward``: every saved activation (the fp32 log-probabilities among them) plus
the gradients of the log-probabilities and of the logits, both fp32 whatever the activations
(the logits are upcast for the loss). Activation checkpointing wraps the blocks, so the head
keeps its log-probabilities and is not recomputed. Checked by hand on Llama-3-8B's numbers,
and against PyTorch's MemTracker on a real GPT-2 (random weights, CPU).
"""

from __future__ import annotations

import pytest

from trainwall.models import transformer as T
from trainwall.models.catalog import workload
from trainwall.optimizer.costmodel.stages import activation_case

V8B, S8K = 128_256, 8_192


def _head(seq: int, name: str = "llama-3-8b"):
    return workload(name).network(seq, "flash").layers[-1]


@pytest.mark.parametrize("activation_bytes, tp", [(2, 1), (4, 1), (2, 8)])
def test_the_loss_backward_holds_two_fp32_gradients_of_the_logits(activation_bytes, tp):
    """Llama-3-8B at 8,192 tokens: 2 x 4 bytes x 8,192 x 128,256 logits = 7.83 GiB per sequence
    (torchtitan PR #996: chunking this loss cut the peak by 7.3 GiB), split over tp ranks
    (the loss is vocabulary-parallel), in bf16 as in fp32."""
    head = _head(S8K)
    assert any(op.kind == "loss" for op in head.ops)
    _, transient = activation_case(head, True, True, "none", activation_bytes, tp, tp > 1)
    assert transient == 2 * 4 * S8K * V8B / tp
    assert transient / 2**30 == pytest.approx(7.83 / tp, abs=0.01)


def test_full_recompute_keeps_the_head_and_does_not_recompute_it():
    """Checkpointing wraps the blocks: under full recompute a block keeps only its input, the head
    keeps what it keeps without recompute (the fp32 log-probabilities among it) and redoes nothing."""
    from trainwall.optimizer.compute import Rates, layer_cost

    rates = Rates(1e15, 1e15, 3e12, 2, 2, 2)
    net = workload("llama-3-8b").network(S8K, "flash")
    block, head = net.layers[1], net.layers[-1]
    none_kept, _ = activation_case(head, True, True, "none", 2, 1, False)
    full_kept, _ = activation_case(head, True, True, "full", 2, 1, False)
    assert full_kept == none_kept >= 4 * S8K * V8B
    assert activation_case(block, True, True, "full", 2, 1, False)[0] == 2 * S8K * 4096   # a block keeps its input
    assert layer_cost(head, True, True, 1, rates, "full").recompute_s == 0.0
    assert layer_cost(block, True, True, 1, rates, "full").recompute_s > 0.0


def test_the_peak_at_the_loss_backward_against_pytorch():
    """GPT-2 (2 layers, 128 wide, vocabulary 32,000), fp32, 4 x 512 tokens, plain SGD, the loss
    computed outside the model and the logits let go (torchtitan's way): MemTracker's activations
    and temporaries at the step's peak are trainwall's kept activations plus the loss's transient,
    within 2 % (gradients are not yet allocated there: ``zero_grad(set_to_none=True)``)."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from torch.distributed._tools.mem_tracker import MemTracker

    vocab, batch, seq = 32_000, 4, 512
    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_embd=128, n_head=4, n_positions=seq, vocab_size=vocab,
                                             activation_function="gelu", attn_implementation="eager",
                                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    ids = torch.randint(0, vocab, (batch, seq))
    tracker = MemTracker()
    tracker.track_external(model, opt)
    with tracker:
        for step in range(2):
            logits = model(input_ids=ids).logits
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten())
            del logits
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step == 0:
                tracker.reset_mod_stats()
    peak = {str(getattr(k, "value", k)): v for k, v in tracker.get_tracker_snapshot("peak")[torch.device("cpu")].items()}
    measured = peak["Activation"] + peak["Temp"]
    spec = T.TransformerSpec(layers=2, hidden=128, heads=4, ffn=512, vocab=vocab, max_positions=seq, dropout=False)
    net = T.build(spec, seq, "eager")
    cases = [activation_case(layer, True, i > 0, "none", 4, 1, False) for i, layer in enumerate(net.layers)]
    predicted = batch * (sum(kept for kept, _ in cases) + cases[-1][1])
    assert peak["Gradient"] == 0
    assert predicted == pytest.approx(measured, rel=0.02)
