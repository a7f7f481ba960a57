"""Numerical stability rules: does this configuration train, or go NaN / diverge?

1. Gradient range (Micikevicius et al. 2018, "Mixed Precision Training"): gradients
   smaller than the format's smallest subnormal flush to zero. fp16's is 5.96e-8
   (2^-24); a loss scale S shifts the gradients to [g_min S, g_max S], which must sit
   inside [min_subnormal, max]. Dynamic scaling finds such an S whenever the
   gradients' own range g_max / g_min fits within the format's range max / min_subnormal.
   bf16 has fp32's exponent range and needs no scaling. FP8 always needs per-tensor
   scaling (Micikevicius et al. 2022), i.e. ``loss_scaling = "dynamic"``.
2. Activation range: forward activations above the format's max overflow to inf
   (fp16: 65504; E4M3 without scaling: 448).
3. Critical batch (McCandlish et al. 2018): beyond the workload's critical batch size,
   training without gradient clipping is taken to diverge (the lab's rule); clipping
   (Pascanu et al. 2013) keeps the update bounded.
4. Staleness of local SGD (federated averaging): replicas that take ``local_steps``
   optimizer steps on their own before their weights are averaged drift apart. Stich
   2019 ("Local SGD converges fast and communicates little") keeps mini-batch SGD's
   rate for up to ~sqrt(T) local steps on convex problems; on deep networks Lin et al.
   2020 ("Don't use large mini-batches, use local SGD") train with H = 16 and see quality
   fall beyond, as Ortiz et al. 2021 ("Trade-offs of local SGD at scale") do at scale.
   The lab's rule: more local steps than the workload's ``max_local_steps`` (an
   assumed, per-modality figure in models/data/modalities.toml) do not converge.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwall.optimizer.precision import FORMATS, POLICIES


@dataclass(frozen=True)
class StabilityReport:
    stable: bool
    reasons: tuple[str, ...]
    grad_format: str
    scaled_gradient_range: tuple[float, float]


def check(precision: str, loss_scaling: str, loss_scale: float, gradient_clipping: bool,
          global_batch: int, gradient_min: float, gradient_max: float, activation_max: float,
          critical_batch: float, local_steps: int = 1,
          max_local_steps: float = float("inf")) -> StabilityReport:
    """Apply the rules of the module docstring; ``reasons`` says what breaks and the fix."""
    policy = POLICIES[precision]
    fmt = FORMATS[policy.grad_format]
    fwd = FORMATS[policy.forward_format]
    reasons: list[str] = []
    lo, hi = gradient_min, gradient_max
    if fmt.name != "fp32" and fmt.name != "bf16":
        if loss_scaling == "none":
            if fmt.name.startswith("fp8"):
                reasons.append(f"{precision} needs per-tensor scaling: set loss_scaling = \"dynamic\"")
            elif gradient_min < fmt.min_subnormal:
                reasons.append(f"gradients down to {gradient_min:.2g} underflow {fmt.name} "
                               f"(smallest subnormal {fmt.min_subnormal:.3g}): use loss scaling or a format with a wider exponent range")
        elif loss_scaling == "static":
            lo, hi = gradient_min * loss_scale, gradient_max * loss_scale
            if hi > fmt.max:
                reasons.append(f"loss scale {loss_scale:g} pushes gradients to {hi:.3g}, above {fmt.name}'s "
                               f"max {fmt.max:g}: lower the scale or use dynamic scaling")
            if lo < fmt.min_subnormal:
                reasons.append(f"loss scale {loss_scale:g} leaves gradients at {lo:.3g}, below {fmt.name}'s "
                               f"smallest subnormal {fmt.min_subnormal:.3g}: raise the scale")
        else:  # dynamic: an S exists iff the gradients' range fits the format's
            if gradient_max / gradient_min > fmt.max / fmt.min_subnormal:
                reasons.append(f"gradient range {gradient_max / gradient_min:.3g}x exceeds what "
                               f"{fmt.name} can hold at any scale: use a format with a wider exponent range")
            else:
                scale = fmt.max / (2 * gradient_max)
                lo, hi = gradient_min * scale, gradient_max * scale
    if activation_max > fwd.max and not (fwd.name.startswith("fp8") and loss_scaling == "dynamic"):
        reasons.append(f"activations up to {activation_max:.3g} overflow {fwd.name} (max {fwd.max:g}): use a format with a wider exponent range")
    if global_batch > critical_batch and not gradient_clipping:
        reasons.append(f"global batch {global_batch} exceeds the critical batch {critical_batch:g} "
                       f"without gradient clipping: training diverges; clip gradients or shrink the batch")
    if local_steps > max_local_steps:
        reasons.append(f"{local_steps} local steps between averaging exceed the {max_local_steps:g} this workload "
                       f"tolerates: the replicas drift apart; average more often")
    return StabilityReport(not reasons, tuple(reasons), fmt.name, (lo, hi))
