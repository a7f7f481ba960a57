"""The workbench's instruments as HTML the browser draws (no matplotlib state shared
between the students of one server), every number from the cost model's
:class:`~trainwall.optimizer.costmodel.Metrics` of the student's plan.

* :func:`waterfall` - part 1: weights, gradients, optimizer state, activations, other,
  stacked against the device's capacity, and :func:`bytes_per_param`, the bytes each
  parameter's states cost;
* :func:`gauge` - part 2: the Data -> Bus -> Compute boxes with their utilisation and
  the longest pole;
* :func:`scaling` - part 3: MFU and scaling efficiency, the busiest link's load against
  the headroom, communication / compute;
* :func:`scaling_plot` - part 3's Scaling Efficiency Plot: MFU against the accelerators
  and against the global batch (:func:`trainwall.figures.scaling`'s sweeps, the ones
  ``trainwall plot`` draws), the target line and the region the mission allows, as SVG;
* :func:`time_to_train` - the plan's days, device-hours, dollars and energy to the
  workload's budget, where it has one;
* :func:`walls` - every wall of the mission with its value, limit and slack.

Colours are the Okabe-Ito palette of :mod:`trainwall.plotting`; every bar also carries
its value as text, so nothing rests on colour alone.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from trainwall.figures import WATERFALL_BARS
from trainwall.plotting import LABELS, OKABE_ITO

#: A table cell's padding and alignment.
CELL = 'style="padding:.15em .7em;text-align:left"'


def _heading(text: str) -> str:
    return f'<h4 style="font-weight:600;margin:.9em 0 .3em">{escape(text)}</h4>'


def _bytes(x: float) -> str:
    from trainwall.challenges.grading import show

    return show(x, "bytes")


def _bar(label: str, share: float, text: str, colour: str, widths: tuple[float, float] = (11, 14)) -> str:
    """A labelled bar filled to ``share`` (0 to 1) with its value as text; ``widths``: the
    label's and the text's columns, in em."""
    width = max(0.0, min(share, 1.0)) * 100
    label_em, text_em = widths
    return ('<div style="display:flex;align-items:center;gap:.5em;margin:2px 0">'
            + (f'<span style="width:{label_em}em">{escape(label)}</span>' if label_em else "")
            + '<span style="flex:1;background:#eee;height:1.2em;position:relative">'
            f'<span style="display:block;height:100%;width:{width:.2f}%;background:{colour}"></span></span>'
            f'<span style="width:{text_em}em">{escape(text)}</span></div>')


def waterfall(metrics) -> str:
    """Each component's bytes per device as a share of the capacity, the total, the verdict."""
    mem = metrics.memory
    rows = [_bar(LABELS[name], getattr(mem, name) / mem.capacity, _bytes(getattr(mem, name)), OKABE_ITO[i])
            for i, name in enumerate(WATERFALL_BARS)]
    over = mem.total - mem.capacity
    verdict = (f"fits: {_bytes(-over)} to spare" if over <= 0 else f"over budget by {_bytes(over)}")
    return (f"{_heading('Training Memory Waterfall')}{''.join(rows)}"
            + _bar("total", mem.total / mem.capacity, f"{_bytes(mem.total)} of {_bytes(mem.capacity)}",
                   OKABE_ITO[7])
            + f"<p><strong>{escape(verdict)}</strong></p>" + bytes_per_param(metrics))


#: The widest bytes-per-parameter bar: fp32 Adam's 16 bytes (4 + 4 + 8) fills it.
BYTES_PER_PARAM_SCALE = 16.0


def bytes_per_param(metrics) -> str:
    """Model-state bytes per parameter held in memory (:meth:`Memory.bytes_per_param`, the
    report's and the Math Peek's numbers), one bar per state, and what is hidden beside the
    weights: the optimizer state and gradients + optimizer state as multiples of the weights
    (the ``hidden_state_over_weights`` quantity a Lock asks for)."""
    from trainwall.challenges.quantities import QUANTITIES

    mem = metrics.memory
    if not mem.weights:
        return ""
    per = mem.bytes_per_param()
    scale = max(BYTES_PER_PARAM_SCALE, per["total"])
    rows = [_bar(LABELS[name], per[name] / scale, f"{per[name]:.3g} B", OKABE_ITO[i])
            for i, name in enumerate(("weights", "gradients", "optimizer_state"))]
    hidden = QUANTITIES["hidden_state_over_weights"][1](metrics)
    return (f"{_heading('Bytes per parameter')}{''.join(rows)}"
            + _bar("model states", per["total"] / scale, f"{per['total']:.3g} B", OKABE_ITO[7])
            + f"<p>The optimizer state is {mem.optimizer_state / mem.weights:.2g}x the weights; gradients and "
              f"optimizer state together are {hidden:.2g}x the weights, memory the weights alone do not show.</p>")


def gauge(metrics) -> str:
    """The Pipeline Utilization Gauge: each box's utilisation (its slowest stage) and the longest pole."""
    from trainwall.figures import box_utilization, longest_pole

    util, pole = box_utilization(metrics), longest_pole(metrics)
    cells = []
    for i, (box, u) in enumerate(util.items()):
        border = "3px solid #000" if box == pole else "1px solid #888"
        cells.append(f'<div style="border:{border};padding:.5em;flex:1"><strong>{escape(box)}</strong>'
                     f'{_bar("utilisation", u, f"{u:.0%} busy", OKABE_ITO[i], widths=(0, 4))}</div>')
    return (f"{_heading('Pipeline Utilization Gauge')}<div style=\"display:flex;gap:.5em\">{''.join(cells)}</div>"
            f"<p>longest pole: <strong>{escape(pole)}</strong>; {metrics.samples_per_s:,.1f} samples/s</p>")


def scaling(metrics, target: float | None = None) -> str:
    """MFU (against the mission's target, if any), scaling efficiency, the busiest link's load."""
    rows = [_bar("MFU", metrics.mfu, f"{metrics.mfu:.1%}" + (f" (target {target:.0%})" if target else ""),
                 OKABE_ITO[0]),
            _bar("scaling efficiency", metrics.scaling_efficiency, f"{metrics.scaling_efficiency:.1%}", OKABE_ITO[2]),
            _bar("busiest link", metrics.network_utilization, f"{metrics.network_utilization:.0%} of the headroom",
                 OKABE_ITO[3])]
    return (f"{_heading('Scaling')}{''.join(rows)}<p>{metrics.devices} devices; communication / compute "
            f"{metrics.comm_to_compute:.3g} (exposed {metrics.exposed_comm_to_compute:.3g})</p>")


#: The SVG panel's size and margins, in pixels.
PANEL = (330, 210)
MARGIN = {"left": 44, "right": 10, "top": 22, "bottom": 34}


def _scale(low: float, high: float, start: float, stop: float, log: bool = False):
    """The linear (or log2) map of [low, high] onto [start, stop] pixels."""
    from math import log2

    f = log2 if log else (lambda v: v)
    lo, hi = f(low), f(high)
    span = (hi - lo) or 1.0
    return lambda v: start + (f(v) - lo) / span * (stop - start)


def _panel(title: str, xlabel: str, points: list[tuple[float, float]], here: tuple[float, float] | None,
           allowed: tuple[float, float] | None, line: tuple[float, str] | None, log: bool = True,
           fmt: Callable[[float], str] = "{:.1%}".format) -> str:
    """One line chart: the allowed x-range shaded, a level dashed (``line``: value, label),
    the plan ringed; x on a log2 scale unless ``log`` is False, y values written with ``fmt``."""
    if not points:
        return f"<p>{escape(title)}: no point of this sweep is a plan the rules allow.</p>"
    width, height = PANEL
    xs = [x for x, _ in points] + ([here[0]] if here else [])
    top = max([y for _, y in points] + [line[0] if line else 0.0, here[1] if here else 0.0]) * 1.1 or 1.0
    x = _scale(min(xs), max(xs), MARGIN["left"], width - MARGIN["right"], log=log)
    y = _scale(0.0, top, height - MARGIN["bottom"], MARGIN["top"])
    parts = []
    if allowed:
        left, right = x(max(allowed[0], min(xs))), x(min(allowed[1], max(xs)))
        parts.append(f'<rect x="{left:.1f}" y="{MARGIN["top"]}" width="{max(right - left, 0):.1f}" '
                     f'height="{height - MARGIN["top"] - MARGIN["bottom"]}" fill="#999" fill-opacity=".2"/>')
    parts.append(f'<polyline fill="none" stroke="{OKABE_ITO[0]}" stroke-width="2" points="'
                 + " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points) + '"/>')
    parts += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="2.5" fill="{OKABE_ITO[0]}"/>' for a, b in points]
    if line:
        parts.append(f'<line x1="{MARGIN["left"]}" x2="{width - MARGIN["right"]}" y1="{y(line[0]):.1f}" '
                     f'y2="{y(line[0]):.1f}" stroke="#000" stroke-dasharray="4 3"/>'
                     f'<text x="{MARGIN["left"] + 4}" y="{y(line[0]) - 3:.1f}" font-size="10">{escape(line[1])}</text>')
    if here:
        parts.append(f'<circle cx="{x(here[0]):.1f}" cy="{y(here[1]):.1f}" r="6" fill="none" stroke="#000" '
                     f'stroke-width="2"/>')
    ticks: list[float] = []
    for t in ([here[0]] if here else []) + [min(xs), max(xs)]:
        if all(abs(x(t) - x(u)) > 36 for u in ticks):
            ticks.append(t)
    parts += [f'<text x="{x(t):.1f}" y="{height - MARGIN["bottom"] + 12}" font-size="9" text-anchor="middle">'
              f'{t:,.0f}</text>' for t in ticks]
    parts.append(f'<text x="{MARGIN["left"] - 4}" y="{y(top / 1.1):.1f}" font-size="9" text-anchor="end">'
                 f'{fmt(top / 1.1)}</text><text x="{MARGIN["left"] - 4}" y="{y(0):.1f}" font-size="9" '
                 f'text-anchor="end">{fmt(0)}</text>')
    label = f"{title}: " + "; ".join(f"{a:,.0f}: {fmt(b)}" for a, b in points)
    return (f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
            f'<text x="{width / 2}" y="14" font-size="11" text-anchor="middle">{escape(title)}</text>'
            + "".join(parts)
            + f'<text x="{width / 2}" y="{height - 4}" font-size="10" text-anchor="middle">{escape(xlabel)}</text>'
            + "</svg>")


def scaling_plot(series, limits, target: float | None = None) -> str:
    """The Scaling Efficiency Plot: MFU against the accelerators (weak scaling in data
    parallelism) and against the global batch at this device count, the mission's target MFU
    dashed, the device range and the batch limit it allows shaded, this plan ringed."""
    devices = list(zip(series.devices, series.mfu))
    batches = list(zip(series.global_batch, series.mfu_by_batch))
    at_devices = dict(devices).get(series.at[0])
    at_batch = dict(batches).get(series.at[1])
    level = (target, f"target {target:.0%}") if target is not None else None
    return (_heading("Scaling Efficiency Plot") + "<div style=\"display:flex;gap:1em;flex-wrap:wrap\">"
            + _panel("MFU against accelerators", "accelerators (log scale)", devices,
                     (series.at[0], at_devices) if at_devices is not None else None,
                     (limits.min_devices, limits.devices), level)
            + _panel("MFU against the global batch", "global batch, samples per step (log scale)", batches,
                     (series.at[1], at_batch) if at_batch is not None else None,
                     (1, limits.global_batch), level)
            + "</div><p>Shaded: what the mission allows. Dashed: the target. Ringed: your plan.</p>")


def _rate(value: float) -> str:
    """Samples per second to three significant figures, without an exponent."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def lever_curve(lever: str, points: list[tuple[int, float]], current: int, needed: float) -> str:
    """Throughput against the lever at the settings the student has tried (and only those:
    the balance point is theirs to find), with the rate loading must deliver dashed."""
    here = dict(points).get(current)
    line = (needed, f"needed {_rate(needed)}/s") if needed == needed else None     # NaN: no rate suffices
    return (_heading(f"Throughput against {lever}")
            + _panel(f"samples/s against {lever} (the settings you tried)", lever, points,
                     (current, here) if here is not None else None, None, line, log=False, fmt=_rate))


def time_to_train(run, feasible: bool = True) -> str:
    """The plan's run to the workload's budget (evaluate's ``training``): steps, days,
    device-hours and the waiting share, dollars and the idle dollars per hour, energy; for a
    plan that breaks a wall, what it would take were it to run."""
    if run is None:
        return ""
    rows = [("steps to the goal", f"{run.steps:,.0f} (critical-batch law, B_noise {run.noise_batch:,.4g} {run.unit})"),
            ("time to train", f"{run.days:,.1f} days"),
            ("device-hours", f"{run.device_hours:,.0f}, {run.idle_share:.0%} of them waiting")]
    if run.dollars is not None:
        rows += [("dollars", f"${run.dollars:,.0f} at ${run.price_per_device_hour:,.4g} per device-hour"),
                 ("paid for waiting", f"${run.idle_dollars_per_hour:,.0f} of every hour")]
    if run.energy_kwh is not None:
        rows.append(("energy", f"{run.energy_kwh:,.0f} kWh" + (f", {run.co2_tonnes:,.1f} t CO2"
                                                            if run.co2_tonnes is not None else "")))
    body = "".join(f"<tr><td {CELL}>{escape(k)}</td><td {CELL}>{escape(v)}</td></tr>" for k, v in rows)
    note = "" if feasible else "<p><em>The plan breaks a wall: this is what it would take, were it to run.</em></p>"
    return f"{_heading('Time and money to train')}{note}<table style=\"border-collapse:collapse\">{body}</table>"


def walls(checks) -> str:
    """Every wall of the mission: held or broken, with its value, limit and why."""
    from trainwall.challenges.grading import show

    rows = []
    for c in checks:
        cells = (c.wall, "held" if c.satisfied else "BROKEN", show(c.value, c.unit), show(c.limit, c.unit), c.message)
        rows.append("<tr>" + "".join(f"<td {CELL}>{escape(x)}</td>" for x in cells) + "</tr>")
    head = "".join(f"<th {CELL}>{x}</th>" for x in ("wall", "", "value", "limit", ""))
    return f"{_heading('Walls')}<table style=\"border-collapse:collapse\"><tr>{head}</tr>{''.join(rows)}</table>"
