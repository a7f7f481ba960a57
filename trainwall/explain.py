"""The Math Peek (``trainwall explain``): each formula of the lab, then with this
configuration's numbers substituted, then the result - all numbers from the cost model.

* the Iron Law of training per optimizer step, T = T_compute + T_bubble + T_exposed +
  T_stall (the cost model's own parts; MFU is read off T, never the reverse);
* MFU = O / (T x N x R_peak) (Chowdhery et al. 2022, PaLM, appendix B);
* the bytes-per-parameter sum of the model states (Rajbhandari et al. 2020, ZeRO, sec. 3.1);
* the data-parallel gradient all-reduce, for a ring 2(n-1)/n x S / B + 2(n-1) alpha
  (Patarasuk & Yuan 2009) - the collective the topology's plan picked, with its own
  bandwidth and latency terms; under ZeRO-3 the weights' ring all-gather,
  (n-1)/n x S / B + (n-1) alpha, three per micro-batch;
* the pipeline bubble, (p - 1) t_stage, a fraction (p - 1) / (m + p - 1) of the pipeline's
  compute (Huang et al. 2019, GPipe; Narayanan et al. 2021); with v model chunks per rank
  (the interleaved schedule, Narayanan et al. 2021, section 2.2.2) divided by v;
* time to train, S(B) x T with S(B) = S_min (1 + B_noise / B) (McCandlish et al. 2018), where
  the workload has a budget (:mod:`trainwall.optimizer.training_run`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    title: str
    formula: str          # mathtext
    substituted: str      # mathtext, this configuration's numbers
    result: str           # plain text, with units
    text_formula: str     # the same, for a terminal
    text_substituted: str


@dataclass(frozen=True)
class MathPeek:
    label: str
    terms: tuple[Term, ...]


def _tex(x: float) -> str:
    """A number in mathtext: 3 significant figures, powers of ten written out."""
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    exponent = math.floor(math.log10(abs(x)))
    return f"{x / 10 ** exponent:.3g} \\times 10^{{{exponent}}}"


def _txt(x: float) -> str:
    return f"{x:.4g}"


def math_peek(config, label: str = "") -> MathPeek:
    from trainwall.optimizer.costmodel import evaluate, step_structure

    m = evaluate(config)
    st = step_structure(config)
    O, N, R, mfu, T = m.model_flops_per_step, m.devices, m.reference_peak, m.mfu, m.time.step_s
    terms = [
        _step(m.time),
        Term("Model FLOPs utilisation",
             r"$MFU = \frac{O}{T \cdot N \cdot R_{peak}}$",
             rf"$MFU = \frac{{{_tex(O)}}}{{{_tex(T)}\ \mathrm{{s}} \cdot {N} \cdot {_tex(R)}}}$",
             f"{mfu:.2%}",
             "MFU = O / (T * N * R_peak)", f"MFU = {_txt(O)} / ({_txt(T)} s * {N} * {_txt(R)})"),
        _bytes_per_param(m),
        _data_parallel(config, st),
        _bubble(config, st, m),
    ]
    if m.training is not None:
        terms.append(_time_to_train(m.training, T))
    return MathPeek(label, tuple(terms))


def _step(t) -> Term:
    """The Iron Law's T from its parts (not from MFU: MFU is read off T, never the reverse)."""
    parts = (t.compute_s, t.bubble_s, t.exposed_communication_s, t.data_stall_s)
    tex = " + ".join(_tex(x) for x in parts)
    txt = " + ".join(_txt(x) for x in parts)
    return Term("The Iron Law of training (one optimizer step)",
                r"$T = T_{compute} + T_{bubble} + T_{exposed} + T_{stall}$",
                rf"$T = {tex} = {_tex(t.step_s)}\ \mathrm{{s}}$",
                f"{_txt(t.step_s)} s per step",
                "T = T_compute + T_bubble + T_exposed + T_stall", f"T = {txt} = {_txt(t.step_s)} s")


def _time_to_train(run, step_s: float) -> Term:
    """Steps to the goal by the critical-batch law (trainwall.optimizer.training_run), times T."""
    return Term("Time to train (McCandlish et al. 2018)",
                r"$T_{train} = S(B) \cdot T,\ \ S(B) = S_{min}\,(1 + B_{noise} / B)$",
                rf"$T_{{train}} = {f'{run.steps:,.0f}'.replace(',', '{,}')} \cdot {_tex(step_s)}\ \mathrm{{s}}$",
                f"{run.days:,.4g} days, {run.device_hours:,.0f} device-hours"
                + (f", ${run.dollars:,.0f} at ${run.price_per_device_hour:,.4g} per device-hour"
                   if run.dollars is not None else ""),
                "T_train = S(B) * T, S(B) = S_min * (1 + B_noise / B)",
                f"T_train = {run.steps:,.0f} steps * {_txt(step_s)} s")


def _bytes_per_param(m) -> Term:
    per = m.memory.bytes_per_param()
    held = m.memory.held_params
    states = m.memory.weights + m.memory.gradients + m.memory.optimizer_state
    w, g, o = per["weights"], per["gradients"], per["optimizer_state"]
    return Term("Model-state bytes per parameter",
                r"$b = b_{weights} + b_{gradients} + b_{optimizer}$",
                rf"$b = {w:.3g} + {g:.3g} + {o:.3g} = {per['total']:.3g}\ \mathrm{{B}}$;"
                rf"$\ \ b \times {_tex(held)}\ \mathrm{{params}} = {_tex(states)}\ \mathrm{{B}}$",
                f"{per['total']:.3g} bytes per parameter, {_txt(states)} B of model states per device",
                "b = b_weights + b_gradients + b_optimizer",
                f"b = {w:.3g} + {g:.3g} + {o:.3g} = {per['total']:.3g} B; x {_txt(held)} params = {_txt(states)} B")


def _data_parallel(config, st) -> Term:
    """The data-parallel collective the cost model priced: the gradient all-reduce (ZeRO 0-2),
    or ZeRO-3's weight all-gather, run three times per micro-batch (the forward's and the
    backward's gathers, the gradients' reduce-scatter, which costs the same)."""
    # the ranks holding the same weights: data x context parallel
    n, plan, S = config.data_parallel * config.training.context_parallel, st.data_parallel_plan, st.data_parallel_bytes
    if plan is None or S == 0:
        return Term("Data-parallel gradient all-reduce", r"$t_{AR} = 0$", rf"$n = {n}$: no gradient to exchange", "0 s",
                    "t_AR = 0", f"n = {n}: no gradient to exchange")
    if config.training.zero_stage >= 3:
        return _ring_term("ZeRO-3 weight all-gather", "AG", n, S, plan, 1, "all-gather",
                          "; 3 per micro-batch: the forward's and the backward's gathers, the gradients' reduce-scatter")
    if plan.algorithm == "ring all-reduce":
        return _ring_term("Data-parallel gradient all-reduce", "AR", n, S, plan, 2, "all-reduce")
    t = plan.time(S)
    return Term(f"Data-parallel gradient all-reduce ({plan.algorithm}, n = {n})",
                r"$t_{AR} = S \cdot \beta + \alpha$",
                rf"$t_{{AR}} = {_tex(S)}\ \mathrm{{B}} \cdot {_tex(plan.seconds_per_byte)}\ \mathrm{{s/B}}"
                rf" + {_tex(plan.latency)}\ \mathrm{{s}}$",
                f"{_txt(t)} s per all-reduce (busiest link {plan.bottleneck_link})",
                "t_AR = S * beta + alpha", f"t_AR = {_txt(S)} B * {_txt(plan.seconds_per_byte)} s/B + "
                                           f"{_txt(plan.latency)} s")


def _ring_term(title: str, sub: str, n: int, S: float, plan, passes: int, what: str, more: str = "") -> Term:
    """A ring collective over n ranks, ``passes`` = 2 for an all-reduce (reduce-scatter then
    all-gather), 1 for an all-gather: passes (n-1)/n x S / B + passes (n-1) alpha (Patarasuk &
    Yuan 2009), with B and alpha read back from the plan the cost model priced."""
    t = plan.time(S)
    bandwidth = passes * (n - 1) / n / plan.seconds_per_byte
    alpha = plan.latency / (passes * (n - 1))
    k, times = (f"{passes}", f"{passes}*") if passes > 1 else ("", "")
    tex_times = f"{passes} \\cdot " if passes > 1 else ""
    return Term(f"{title} (ring, n = {n})",
                rf"$t_{{{sub}}} = \frac{{{k}(n-1)}}{{n}} \cdot \frac{{S}}{{B}} + {k}(n-1)\,\alpha$",
                rf"$t_{{{sub}}} = \frac{{{tex_times}{n - 1}}}{{{n}}} \cdot "
                rf"\frac{{{_tex(S)}\ \mathrm{{B}}}}{{{_tex(bandwidth)}\ \mathrm{{B/s}}}} + "
                rf"{tex_times}{n - 1} \cdot {_tex(alpha)}\ \mathrm{{s}}$",
                f"{_txt(t)} s per {what} (busiest link {plan.bottleneck_link}){more}",
                f"t_{sub} = {k}(n-1)/n * S/B + {k}(n-1) * alpha",
                f"t_{sub} = {times}{n - 1}/{n} * {_txt(S)} B / {_txt(bandwidth)} B/s + {times}{n - 1} * "
                f"{_txt(alpha)} s")


def _bubble(config, st, m) -> Term:
    """1F1B's (p - 1) t_stage, or the interleaved schedule's (p - 1) t_stage / v with v model chunks
    per rank (:mod:`trainwall.optimizer.costmodel.schedule`), and its share of the pipeline."""
    p, mb, v = st.pipeline_parallel, config.micro_batches, st.schedule.chunks
    fraction = st.schedule.bubble_fraction(mb)
    title = f"Pipeline bubble (p = {p} stages, m = {mb} micro-batches" + (f", v = {v} chunks per rank)" if v > 1
                                                                         else ")")
    result = f"{_txt(m.time.bubble_s)} s per step, {fraction:.1%} of the pipeline's compute"
    if v == 1:
        return Term(title, r"$t_{bubble} = (p-1)\,t_{stage},\ \ \frac{p-1}{m+p-1}$ of the pipeline's compute",
                    rf"$t_{{bubble}} = {p - 1} \cdot {_tex(st.t_stage)}\ \mathrm{{s}},\ \ "
                    rf"\frac{{{p - 1}}}{{{mb} + {p - 1}}} = {fraction:.3f}$", result,
                    "t_bubble = (p-1) * t_stage;  (p-1)/(m+p-1) of the pipeline's compute",
                    f"t_bubble = {p - 1} * {_txt(st.t_stage)} s;  {p - 1}/({mb} + {p - 1}) = {fraction:.3f}")
    return Term(title, r"$t_{bubble} = \frac{(p-1)\,t_{stage}}{v},\ \ \frac{(p-1)/v}{m+(p-1)/v}$ of the "
                       r"pipeline's compute",
                rf"$t_{{bubble}} = \frac{{{p - 1} \cdot {_tex(st.t_stage)}\ \mathrm{{s}}}}{{{v}}},\ \ "
                rf"\frac{{{p - 1}/{v}}}{{{mb} + {p - 1}/{v}}} = {fraction:.3f}$", result,
                "t_bubble = (p-1) * t_stage / v;  ((p-1)/v)/(m+(p-1)/v) of the pipeline's compute",
                f"t_bubble = {p - 1} * {_txt(st.t_stage)} s / {v};  ({p - 1}/{v})/({mb} + {p - 1}/{v}) = "
                f"{fraction:.3f}")


def as_text(peek: MathPeek) -> str:
    lines = [f"Math Peek: {peek.label}"]
    for term in peek.terms:
        lines += ["", f"  {term.title}", f"    {term.text_formula}", f"    {term.text_substituted}",
                  f"    = {term.result}"]
    return "\n".join(lines)


def draw(peek: MathPeek, path) -> None:
    """The Math Peek as a figure: mathtext formulas, substitutions and results."""
    from trainwall import plotting

    plotting.output_format(path)
    with plotting.pyplot_style() as plt:
        height = 0.6 + 1.35 * len(peek.terms)
        fig = plt.figure(figsize=(9.5, height))
        y = 1.0 - 0.35 / height
        fig.text(0.02, y, f"Math Peek: {peek.label}", fontsize=12, fontweight="bold", va="top")
        for term in peek.terms:
            y -= 0.32 / height
            fig.text(0.02, y, term.title, fontsize=10, fontweight="bold", va="top")
            y -= 0.3 / height
            fig.text(0.04, y, term.formula, fontsize=11, va="top")
            y -= 0.38 / height
            fig.text(0.04, y, term.substituted, fontsize=10, va="top")
            y -= 0.3 / height
            fig.text(0.04, y, "= " + term.result, fontsize=10, va="top", color=plotting.OKABE_ITO[0])
            y -= 0.05 / height
        plotting.save(fig, path)
