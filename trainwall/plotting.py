"""The lab's figures, drawn with matplotlib from :mod:`trainwall.figures` (numbers from the
cost model only).

Readable in greyscale and for colour-blind readers: the Okabe-Ito palette (Okabe & Ito
2008, "Color Universal Design") plus hatching and distinct markers, so no meaning rests
on hue alone. Deterministic: one bundled font (DejaVu Sans), text as paths in SVG, a
fixed SVG id salt, and no dates or software versions in PNG / SVG / PDF metadata, so the
same input gives the same bytes. The format follows the file's extension.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from trainwall.core.errors import InputError

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
HATCHES = ("", "//", "\\\\", "xx", "..", "++")
MARKERS = ("o", "s", "^", "D", "v", "P")
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "axes.grid": True, "grid.alpha": 0.3,
    "svg.hashsalt": "trainwall", "svg.fonttype": "path", "pdf.fonttype": 42, "figure.dpi": 100,
    "savefig.dpi": 150,
}
METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
            "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}}
LABELS = {"weights": "weights", "gradients": "gradients", "optimizer_state": "optimizer state",
          "activations": "activations", "other": "other (runtime)"}


def output_format(path: str | Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError("-o", str(path), "the figure's file must end in .png, .svg or .pdf")
    return fmt


@contextmanager
def pyplot_style():
    """pyplot (Agg backend) inside the project's style: fonts, palette, deterministic output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    style = {**STYLE, "axes.prop_cycle": cycler(color=OKABE_ITO)}
    with plt.rc_context(style):
        yield plt


def save(fig, path: str | Path) -> None:
    """Render ``fig`` in memory, then write it atomically (:func:`trainwall.core.outputs.atomic_write`):
    a crash mid-write leaves the previous figure whole."""
    import io

    import matplotlib.pyplot as plt

    from trainwall.core.outputs import atomic_write

    fmt = output_format(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata=METADATA[fmt])
    plt.close(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())


# --- the memory waterfall --------------------------------------------------------------------------

def draw_waterfalls(waterfalls, path: str | Path, title: str) -> None:
    """One waterfall per configuration, side by side on one scale, with the capacity line."""
    from trainwall.core.units import unit_for

    output_format(path)
    with pyplot_style() as plt:
        n = len(waterfalls)
        cols = min(n, 3)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), sharey=True, squeeze=False)
        top = max(max(w.total, w.capacity) for w in waterfalls)
        scale, unit = unit_for(max(w.capacity for w in waterfalls))
        for ax, w in zip(axes.flat, waterfalls):
            _waterfall(ax, w, scale, unit)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel(f"memory per device ({unit})")
        for ax in axes.flat:
            ax.set_ylim(0, top / scale * 1.15)
        fig.suptitle(title)
        fig.tight_layout()
        save(fig, path)


def _waterfall(ax, w, scale: float, unit: str) -> None:
    per_param = w.bytes_per_param
    names = [LABELS[name] + (f"\n{per_param[name]:.1f} B/param" if name in per_param else "")
             for name, _ in w.bars] + ["total"]
    running = 0.0
    for i, (name, value) in enumerate(w.bars):
        ax.bar(i, value / scale, bottom=running / scale, color=OKABE_ITO[i], hatch=HATCHES[i % len(HATCHES)],
               edgecolor="black", linewidth=0.6)
        running += value
    total = len(w.bars)
    ax.bar(total, w.total / scale, color="white", edgecolor="black", hatch="", linewidth=1.2)
    verdict = "fits" if w.fits else "over budget"
    ax.annotate(f"{w.total / scale:.3g} {unit}\n{w.bytes_per_param['total']:.1f} B/param states\n{verdict}",
                (total, w.total / scale), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                textcoords="offset points")
    ax.axhline(w.capacity / scale, color="black", linestyle="--", linewidth=1.0)
    ax.annotate(f"budget {w.capacity / scale:.3g} {unit}", (0, w.capacity / scale), xytext=(0, 3),
                textcoords="offset points", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
    ax.set_title(w.label)


# --- scaling -----------------------------------------------------------------------------------------

def draw_scaling(series, path: str | Path, title: str, target: float | None = None) -> None:
    """MFU and scaling efficiency against devices, MFU against the global batch, and the
    communication / compute ratio with the network's headroom."""
    output_format(path)
    with pyplot_style() as plt:
        fig, (a, b, c) = plt.subplots(1, 3, figsize=(13.5, 4))
        net = c.twinx()   # the network on its own axis: a fraction of the busiest link
        for i, s in enumerate(series):
            colour, marker = OKABE_ITO[i], MARKERS[i]
            a.plot(s.devices, s.mfu, marker=marker, color=colour, label=f"MFU, {s.label}")
            a.plot(s.devices, s.scaling_efficiency, marker=marker, color=colour, linestyle=":",
                   label=f"scaling efficiency, {s.label}")
            b.plot(s.global_batch, s.mfu_by_batch, marker=marker, color=colour, label=s.label)
            c.plot(s.devices, s.comm_to_compute, marker=marker, color=colour, label=f"comm / compute, {s.label}")
            net.plot(s.devices, s.network_utilization, marker=marker, color=colour, linestyle="--",
                     markerfacecolor="white", label=f"busiest link, {s.label}")
            here = s.devices.index(s.at[0]) if s.at[0] in s.devices else None
            if here is not None:
                a.plot([s.at[0]], [s.mfu[here]], marker="*", markersize=14, color=colour, markeredgecolor="black")
            if s.at[1] in s.global_batch:
                k = s.global_batch.index(s.at[1])
                b.plot([s.at[1]], [s.mfu_by_batch[k]], marker="*", markersize=14, color=colour,
                       markeredgecolor="black")
        if target is not None:
            for ax in (a, b):
                ax.axhline(target, color="black", linestyle="--", linewidth=1.0)
                ax.annotate(f"target MFU {target:.0%}", (0.02, target), xycoords=("axes fraction", "data"),
                            xytext=(0, 3), textcoords="offset points", fontsize=7)
        background = max(s.background for s in series)
        net.axhspan(background, 1.0, color="#999999", alpha=0.25, hatch="//",
                    label=f"headroom left by other jobs ({1 - background:.0%})")
        net.axhline(1.0, color="black", linewidth=1.0)
        net.set_ylim(0.0, 1.05)
        net.set_ylabel("busiest link's load, background included (dashed)")
        net.grid(False)
        for ax in (a, b, c):
            ax.set_xscale("log", base=2)
        a.set(xlabel="accelerators (log scale)", ylabel="fraction", title="MFU and scaling efficiency (weak scaling)")
        b.set(xlabel="global batch, samples per step (log scale)", ylabel="MFU",
              title="MFU against the global batch")
        c.set(xlabel="accelerators (log scale)", ylabel="communication / compute (solid)",
              title="communication / compute and the network")
        for ax in (a, b):
            ax.legend(fontsize=6)
        lines = c.get_legend_handles_labels()
        dashed = net.get_legend_handles_labels()
        net.legend(lines[0] + dashed[0], lines[1] + dashed[1], fontsize=6, loc="center left")
        fig.suptitle(title)
        fig.tight_layout()
        save(fig, path)


# --- time and money to train ----------------------------------------------------------------------

def draw_train(series, path: str | Path, title: str) -> None:
    """Days (solid) and dollars (dashed, right axis) to train to the workload's budget against
    the global batch, with the critical batch B_noise marked, and against the accelerators
    (weak scaling): the U-shape of the critical-batch law (trainwall.optimizer.training_run)."""
    output_format(path)
    with pyplot_style() as plt:
        fig, panels = plt.subplots(1, 2, figsize=(11, 4))
        for ax, xs_of, days_of, dollars_of, at, xlabel in (
                (panels[0], "global_batch", "days_by_batch", "dollars_by_batch", 1,
                 "global batch, samples per step (log scale)"),
                (panels[1], "devices", "days", "dollars", 0, "accelerators (log scale)")):
            money = ax.twinx()
            for i, s in enumerate(series):
                xs, days, dollars = getattr(s, xs_of), getattr(s, days_of), getattr(s, dollars_of)
                colour, marker = OKABE_ITO[i], MARKERS[i]
                ax.plot(xs, days, marker=marker, color=colour, label=f"days, {s.label}")
                if any(d == d for d in dollars):                            # NaN: no price for this device
                    money.plot(xs, [d / 1e6 for d in dollars], marker=marker, color=colour, linestyle="--",
                               markerfacecolor="white", label=f"$M, {s.label}")
                if s.at[at] in xs:
                    k = xs.index(s.at[at])
                    ax.plot([xs[k]], [days[k]], marker="*", markersize=14, color=colour, markeredgecolor="black")
            ax.set(xlabel=xlabel, ylabel="days to train (solid)")
            ax.set_xscale("log", base=2)
            money.set_ylabel("million US dollars (dashed)")
            money.grid(False)
            lines, labels = ax.get_legend_handles_labels()
            more, more_labels = money.get_legend_handles_labels()
            ax.legend(lines + more, labels + more_labels, fontsize=6, loc="upper center")
        noise = next((s.noise_batch for s in series if s.noise_batch), None)
        if noise:
            panels[0].axvline(noise, color="black", linestyle=":", linewidth=1.0)
            panels[0].annotate(f"critical batch {noise:,.0f}", (noise, 0.5), xycoords=("data", "axes fraction"),
                               xytext=(-3, 0), textcoords="offset points", fontsize=7, ha="right", rotation=90)
        panels[0].set_title("time and money against the global batch")
        panels[1].set_title("time and money against the accelerators (weak scaling)")
        fig.suptitle(title)
        fig.tight_layout()
        save(fig, path)


# --- the pipeline gauge ------------------------------------------------------------------------------

def draw_pipeline(gauges, path: str | Path, title: str) -> None:
    """Data -> Bus -> Compute with each stage's utilisation, and throughput against workers."""
    from matplotlib.patches import FancyArrow, Rectangle

    output_format(path)
    with pyplot_style() as plt:
        fig, axes = plt.subplots(len(gauges), 2, figsize=(11, 3.4 * len(gauges)), squeeze=False,
                                 gridspec_kw={"width_ratios": [1.3, 1]})
        for row, g in zip(axes, gauges):
            boxes, curve = row
            boxes.set_xlim(0, 3.3)
            boxes.set_ylim(0, 1.3)
            boxes.axis("off")
            for i, box in enumerate(("Data", "Bus", "Compute")):
                x = 0.1 + i * 1.1
                longest = box == g.longest_pole
                boxes.add_patch(Rectangle((x, 0.2), 0.9, 0.8, facecolor="white", edgecolor="black",
                                          linewidth=3.0 if longest else 0.8))
                boxes.add_patch(Rectangle((x, 0.2), 0.9 * g.utilization[box], 0.25, facecolor=OKABE_ITO[i],
                                          hatch=HATCHES[i + 1], edgecolor="black", linewidth=0.5))
                boxes.text(x + 0.45, 0.85, box + (" (longest pole)" if longest else ""), ha="center", fontsize=8,
                           fontweight="bold" if longest else "normal")
                boxes.text(x + 0.45, 0.6, f"{g.capacities[box]:.4g} training\nsamples/s, {g.utilization[box]:.0%} busy",
                           ha="center", va="center", fontsize=7)
                if i < 2:
                    boxes.add_patch(FancyArrow(x + 0.92, 0.6, 0.15, 0.0, width=0.02, head_width=0.08,
                                               head_length=0.05, length_includes_head=True, color="black"))
            boxes.set_title(f"{g.label}: {g.rate:.4g} of {g.demand:.4g} training samples/s per host")
            unit = "data-loader workers per host" if g.lever == "workers" else "data echo (uses of each fresh sample)"
            curve.plot(g.settings, g.throughput, marker="o", markersize=3, color=OKABE_ITO[0],
                       label="input pipeline (max-flow)")
            curve.plot(g.settings, g.needed, color="black", linestyle="--", linewidth=1.0,
                       label="what loading must deliver")
            if g.balance_point is not None:
                k = g.settings.index(g.balance_point)
                curve.plot([g.balance_point], [g.throughput[k]], marker="*", markersize=14, color=OKABE_ITO[1],
                           markeredgecolor="black", label=f"balance point: {g.lever} = {g.balance_point}")
            curve.axvline(g.current, color=OKABE_ITO[3], linestyle=":", label=f"this plan: {g.lever} = {g.current}")
            curve.set(xlabel=unit, ylabel="training samples/s per host", title=f"throughput against {g.lever}")
            curve.legend(fontsize=7)
        fig.suptitle(title)
        fig.tight_layout()
        save(fig, path)


# --- a class's scores ------------------------------------------------------------------------------

def draw_score_histogram(scores, submissions: int, top: float, path: str | Path, title: str) -> None:
    """The gradable submissions' ``scores`` (of ``top``), out of ``submissions`` graded: the
    others, not gradable, counted apart (deterministic PNG).

    ``title`` is shown as given: the caller cleans what came from file names."""
    with pyplot_style() as plt:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(scores, bins=10, range=(0.0, top), color=OKABE_ITO[0], edgecolor="black", hatch="//")
        ax.set_xlabel(f"score (of {top:g})")
        ax.set_ylabel("submissions")
        ax.set_title(f"{title}: {submissions} submissions ({submissions - len(scores)} not gradable)")
        ax.set_xlim(0.0, top)
        fig.tight_layout()
        save(fig, path)


def draw_check_rates(locks: dict[str, tuple[int, int]], walls: dict[str, tuple[int, int]], path: str | Path,
                     title: str) -> None:
    """The class's Lock accuracy (share right, per Lock) beside its wall failures (share of
    plans that break each wall), from :func:`trainwall.challenges.classroom.check_rates`;
    each bar is labelled with its counts. ``title`` is shown as given (cleaned by the caller)."""
    panels = (("Lock predictions right", locks, OKABE_ITO[2], ""), ("plans that break the wall", walls,
                                                                     OKABE_ITO[3], "//"))
    rows = max(len(locks), len(walls), 1)
    with pyplot_style() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(9, 2.2 + 0.35 * rows))
        for ax, (label, counts, colour, hatch) in zip(axes, panels):
            names = list(counts)[::-1]
            shares = [100.0 * counts[n][0] / counts[n][1] for n in names]
            ax.barh(names, shares, color=colour, edgecolor="black", hatch=hatch)
            for y, n in enumerate(names):
                ax.annotate(f"{counts[n][0]}/{counts[n][1]}", (min(shares[y], 100.0), y), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=8)
            ax.set_xlim(0.0, 115.0)
            ax.set_xlabel(f"{label} (%)")
            if not names:
                ax.text(0.5, 0.5, "none in this class", ha="center", va="center", transform=ax.transAxes)
                ax.set_yticks([])
        fig.suptitle(title)
        fig.tight_layout()
        save(fig, path)
