"""The workbench's instruments as HTML the browser draws (no matplotlib state shared
between the students of one server), every number from the cost model's
:class:`~trainwall.optimizer.costmodel.Metrics` of the student's plan.

* :func:`waterfall` - part 1: weights, gradients, optimizer state, activations, other,
  stacked against the device's capacity, and the bytes each parameter costs;
* :func:`gauge` - part 2: the Data -> Bus -> Compute boxes with their utilisation and
  the longest pole;
* :func:`scaling` - part 3: MFU and scaling efficiency, the busiest link's load against
  the headroom, communication / compute;
* :func:`walls` - every wall of the mission with its value, limit and slack.

Colours are the Okabe-Ito palette of :mod:`trainwall.plotting`; every bar also carries
its value as text, so nothing rests on colour alone.
"""

from __future__ import annotations

from html import escape

from trainwall.figures import WATERFALL_BARS
from trainwall.plotting import LABELS, OKABE_ITO

def _bytes(x: float) -> str:
    from trainwall.challenges.grading import show

    return show(x, "bytes")


def _bar(label: str, share: float, text: str, colour: str) -> str:
    width = max(0.0, min(share, 1.0)) * 100
    return (f'<div style="display:flex;align-items:center;gap:.5em;margin:2px 0">'
            f'<span style="width:11em">{escape(label)}</span>'
            f'<span style="flex:1;background:#eee;height:1.2em;position:relative">'
            f'<span style="display:block;height:100%;width:{width:.2f}%;background:{colour}"></span></span>'
            f'<span style="width:14em">{escape(text)}</span></div>')


def waterfall(metrics) -> str:
    """Each component's bytes per device as a share of the capacity, the total, the verdict."""
    mem = metrics.memory
    rows = [_bar(LABELS[name], getattr(mem, name) / mem.capacity, _bytes(getattr(mem, name)), OKABE_ITO[i])
            for i, name in enumerate(WATERFALL_BARS)]
    over = mem.total - mem.capacity
    verdict = (f"fits: {_bytes(-over)} to spare" if over <= 0 else f"over budget by {_bytes(over)}")
    per_param = mem.bytes_per_param()
    params = ", ".join(f"{escape(LABELS.get(k, k))} {v:.3g}" for k, v in per_param.items())
    return (f"<h4>Training Memory Waterfall</h4>{''.join(rows)}"
            + _bar("total", mem.total / mem.capacity, f"{_bytes(mem.total)} of {_bytes(mem.capacity)}",
                   OKABE_ITO[7])
            + f"<p><strong>{escape(verdict)}</strong></p><p>bytes per trained parameter: {params}</p>")


def gauge(metrics) -> str:
    """The Pipeline Utilization Gauge: each box's utilisation (its slowest stage) and the longest pole."""
    from trainwall.figures import box_utilization, longest_pole

    util, pole = box_utilization(metrics), longest_pole(metrics)
    cells = []
    for i, (box, u) in enumerate(util.items()):
        border = "3px solid #000" if box == pole else "1px solid #888"
        cells.append(f'<div style="border:{border};padding:.5em;flex:1"><strong>{escape(box)}</strong>'
                     f'{_bar("utilisation", u, f"{u:.0%}", OKABE_ITO[i])}</div>')
    return (f"<h4>Pipeline Utilization Gauge</h4><div style=\"display:flex;gap:.5em\">{''.join(cells)}</div>"
            f"<p>longest pole: <strong>{escape(pole)}</strong>; {metrics.samples_per_s:,.1f} samples/s</p>")


def scaling(metrics, target: float | None = None) -> str:
    """MFU (against the mission's target, if any), scaling efficiency, the busiest link's load."""
    rows = [_bar("MFU", metrics.mfu, f"{metrics.mfu:.1%}" + (f" (target {target:.0%})" if target else ""),
                 OKABE_ITO[0]),
            _bar("scaling efficiency", metrics.scaling_efficiency, f"{metrics.scaling_efficiency:.1%}", OKABE_ITO[2]),
            _bar("busiest link", metrics.network_utilization, f"{metrics.network_utilization:.0%} of the headroom",
                 OKABE_ITO[3])]
    return (f"<h4>Scaling</h4>{''.join(rows)}<p>{metrics.devices} devices; communication / compute "
            f"{metrics.comm_to_compute:.3g} (exposed {metrics.exposed_comm_to_compute:.3g})</p>")


def walls(checks) -> str:
    """Every wall of the mission: held or broken, with its value, limit and why."""
    from trainwall.challenges.grading import show

    rows = []
    for c in checks:
        state = "held" if c.satisfied else "BROKEN"
        rows.append(f"<tr><td>{escape(c.wall)}</td><td>{state}</td><td>{escape(show(c.value, c.unit))}</td>"
                    f"<td>{escape(show(c.limit, c.unit))}</td><td>{escape(c.message)}</td></tr>")
    return ("<h4>Walls</h4><table><tr><th>wall</th><th></th><th>value</th><th>limit</th><th></th></tr>"
            + "".join(rows) + "</table>")
