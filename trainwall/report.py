"""Human-readable reports of the cost model's metrics (the terminal view)."""

from __future__ import annotations

from trainwall.core.config import Config
from trainwall.core.units import unit_for, watts
from trainwall.optimizer.costmodel import Metrics

def fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.1f} us"


def memory_table(m: Metrics) -> list[str]:
    """The waterfall: each bar, its running total, against the device's capacity."""
    mem = m.memory
    scale, unit = unit_for(mem.capacity)
    rows = [("weights", mem.weights), ("gradients", mem.gradients), ("optimizer state", mem.optimizer_state),
            ("activations", mem.activations), ("other (runtime)", mem.other)]
    out = [f"  {'memory per device':<22}{unit:>12}{'cumulative':>14}"]
    running = 0.0
    for name, value in rows:
        running += value
        out.append(f"  {name:<22}{value / scale:>12.3f}{running / scale:>14.3f}")
    verdict = "fits" if mem.total <= mem.capacity else "DOES NOT FIT"
    out.append(f"  {'total':<22}{mem.total / scale:>12.3f}   of {mem.capacity / scale:.3f} {unit} capacity: {verdict}")
    if mem.flash_capacity:
        fs, fu = unit_for(mem.flash_capacity)
        out.append(f"  {'frozen weights (flash)':<22}{mem.flash / fs:>12.3f}   of {mem.flash_capacity / fs:.3f} {fu} flash")
    if mem.params:
        states = mem.weights + mem.gradients + mem.optimizer_state
        per = mem.bytes_per_param()
        out.append(f"  model states: {per['total']:.2f} bytes/param = weights {per['weights']:.2f} + gradients "
                   f"{per['gradients']:.2f} + optimizer {per['optimizer_state']:.2f}"
                   + (f"  ({states / mem.weights:.1f}x the weights)" if mem.weights else ""))
    return out


def power_lines(p) -> list[str]:
    """What each device draws while it learns and on average over its duty cycle, against its
    budget; what the whole system draws (nothing for a device without a sourced power)."""
    if p is None:
        return []
    radio = f", its radio {watts(p.radio_w)} more while it communicates" if p.radio_w else ""
    lines = [f"  power per device: {watts(p.learning_w)} while it learns (computing {watts(p.busy_w)}, "
             f"waiting {watts(p.idle_w)}{radio})"]
    if p.samples_per_hour is not None:
        lines.append(f"    learning from {p.samples_per_hour:,.0f} fresh samples an hour: {p.duty_cycle:.2%} of the "
                     f"time, asleep at {watts(p.sleep_w)} otherwise: {watts(p.average_w)} on average")
    if p.budget_w is not None:
        lines.append(f"    budget {watts(p.budget_w)} per device on average: "
                     + ("within it" if p.average_w <= p.budget_w and p.duty_cycle <= 1 else "OVER IT"))
    if p.host_w:
        lines.append(f"  the system draws {watts(p.system_w)} while it learns (each host "
                     f"{watts(p.host_w)} beside its devices)")
    return lines


def training_lines(run, feasible: bool = True) -> list[str]:
    """Time to train to the workload's budget (nothing for a workload without one); for a
    plan that breaks a wall, said to be what it would take if it ran."""
    if run is None:
        return []
    verb = "time to train" if feasible else "time to train, were the plan to run (it breaks a wall)"
    lines = ["", f"  {verb}: {run.steps:,.0f} steps to {run.budget:.4g} {run.unit} (the critical-batch law, "
                 f"B_noise {run.noise_batch:.4g} {run.unit}): {run.days:,.1f} days",
             f"    {run.device_hours:,.0f} device-hours, of which {run.idle_device_hours:,.0f} "
             f"({run.idle_share:.0%}) wait (bubble, exposed communication, data stall)"]
    if run.dollars is not None:
        lines.append(f"    ${run.dollars:,.0f} at ${run.price_per_device_hour:,.4g} per device-hour; "
                     f"${run.idle_dollars_per_hour:,.0f} of every hour pays for waiting devices")
    if run.energy_kwh is not None:
        co2 = (f": {run.co2_tonnes:,.1f} t CO2 at {run.costs.grid_kg_co2_per_kwh:g} kg/kWh"
               if run.co2_tonnes is not None else "")
        lines.append(f"    {run.energy_kwh:,.0f} kWh at PUE {run.costs.pue:g}{co2} ({run.energy_at_power_limit_kwh:,.0f} "
                     f"kWh counting every device-hour at its {run.costs.power_w:g} W limit, the published reports' "
                     f"method)")
    lines.append(f"    goal: {run.source}")
    if run.dollars is not None:
        lines.append(f"    price: {run.price_source}")
    return lines


def text_report(config: Config, m: Metrics, source: str = "") -> str:
    t = config.training
    tm = m.time
    lines = [f"trainwall evaluate {source}".rstrip(),
             f"  {config.workload.model or 'inline architecture'} on {m.devices} x {config.system.accelerator}; "
             f"{t.optimizer} {t.precision}, recompute {t.recompute}, TP {t.tensor_parallel} x PP "
             f"{t.pipeline_parallel}" + (f" (interleaved, {t.virtual_stages} chunks per rank)" if t.virtual_stages > 1
                                         else "") + f" x DP {config.data_parallel}"
             + (f" x CP {t.context_parallel}" if t.context_parallel > 1 else "") + f", micro-batch {t.micro_batch}, "
             f"global batch {config.global_batch}, ZeRO {t.zero_stage}", ""]
    lines += memory_table(m)
    lines += ["", f"  {'step time':<22}{fmt_seconds(tm.step_s):>14}",
              f"  {'  compute':<22}{fmt_seconds(tm.compute_s):>14}  (recompute {fmt_seconds(tm.recompute_s)}, "
              f"optimizer {fmt_seconds(tm.optimizer_s)})",
              f"  {'  pipeline bubble':<22}{fmt_seconds(tm.bubble_s):>14}",
              f"  {'  exposed comm.':<22}{fmt_seconds(tm.exposed_communication_s):>14}  of "
              f"{fmt_seconds(tm.communication_s)} (TP {fmt_seconds(tm.tensor_parallel_s)}"
              + (f" of which {fmt_seconds(tm.tensor_parallel_exposed_s)} exposed"
                 if tm.tensor_parallel_exposed_s < tm.tensor_parallel_s else "") + ", PP "
              f"{fmt_seconds(tm.pipeline_p2p_s)}, "
              + (f"CP {fmt_seconds(tm.context_parallel_s)}, " if tm.context_parallel_s else "")
              + f"DP {fmt_seconds(tm.data_parallel_s)})",
              f"  {'  data stall':<22}{fmt_seconds(tm.data_stall_s):>14}", "",
              f"  MFU {m.mfu:.1%}   HFU {m.hfu:.1%}   (reference peak {m.reference_peak / 1e12:.4g} TFLOP/s per device)",
              f"  throughput {m.samples_per_s:.4g} samples/s" + (f", {m.tokens_per_s:.4g} tokens/s" if m.tokens_per_s else ""),
              f"  communication / compute {m.comm_to_compute:.3f} (exposed {m.exposed_comm_to_compute:.3f}); "
              f"scaling efficiency {m.scaling_efficiency:.1%}",
              f"  network utilisation {m.network_utilization:.1%} (background {m.background_network_load:.0%})"
              + (f", busiest link {m.bottleneck_link}" if m.bottleneck_link else ""),
              f"  input pipeline: longest pole = {m.pipeline.bottleneck}; "
              + ", ".join(f"{k} {v:.0%}" for k, v in m.pipeline_utilization.items()),
              f"  numerically {'stable' if m.stability.stable else 'UNSTABLE'} (gradients in {m.stability.grad_format})"]
    lines += power_lines(m.power)
    lines += training_lines(m.training, m.feasible)
    if m.violations:
        lines += ["", "  infeasible:"] + [f"    - {v.constraint}: {v.message}" for v in m.violations]
    else:
        lines += ["", "  feasible"]
    return "\n".join(lines)


def solution_report(result) -> str:
    """A mission's optimum in the lab's words: what to choose, which wall binds, by how much."""
    from trainwall.challenges.grading import show_objective as shown_as
    from trainwall.challenges.quantities import quantity

    m = result.mission.rendered()
    lines = [f"{m.reference}: {m.title}", f"  status: {result.status.value}"]
    if result.configuration is None:
        if result.conflicts:
            lines.append(f"  no configuration satisfies every constraint; relaxing any one of "
                         f"{', '.join(result.conflicts)} would make the mission solvable")
        else:
            lines.append("  no configuration satisfies the constraints, even with any single one relaxed")
        return "\n".join(lines)
    config = result.configuration
    chosen = {}
    for dotted in m.decisions:
        section, name = dotted.split(".", 1)
        if dotted == "training.micro_batches":
            chosen["global_batch"] = config["training"]["global_batch"]
        else:
            chosen[name] = config[section][name]
    if m.part == 3:
        from trainwall.challenges.plans import layout_devices

        chosen["devices"] = layout_devices(config)        # part 3's rule: the degrees set the device count
    lines.append("  choose: " + ", ".join(f"{k} = {v}" for k, v in chosen.items()))
    if m.select_layers:
        lines.append(f"  train layers {_ranges(config['training']['trainable'])} (layer indices)")
    value = result.objective
    lines.append(f"  {m.objective.sense} {m.objective.quantity}: {(shown := shown_as(m.objective.quantity, value))}")
    metrics = result.metrics
    mem = metrics.memory
    scale, unit = unit_for(mem.capacity)
    lines.append(f"  memory {mem.total / scale:.3f} of {mem.capacity / scale:.3f} {unit} "
                 f"({mem.total / mem.capacity:.1%}); slack {(mem.capacity - mem.total) / scale:.3f} {unit}")
    extra = result.extra or {}
    if "longest_pole" in extra:
        pole = extra["longest_pole"]
        flow = metrics.pipeline
        from trainwall.core.config import DataSection

        echo = result.configuration["data"].get("echo", DataSection().echo)   # unset: the config's default
        demand = flow.capacities["compute"] * echo
        lines.append(f"  balance point: the accelerators ask for {demand:,.1f} training samples/s per host; the "
                     f"longest pole of the input pipeline is {pole['stage']} at {pole['utilization']:.1%} busy")
    if m.part == 3:
        lines.append(f"  network: busiest link {metrics.network_utilization:.1%} used "
                     f"(background {metrics.background_network_load:.0%}); communication / compute "
                     f"{metrics.comm_to_compute:.2f}; bubble {quantity('bubble_fraction', metrics):.1%} of the "
                     f"pipeline's time")
    lines += _optimum_costs(metrics)
    if result.binding:
        lines.append(f"  the wall: {', '.join(result.binding)} (relaxing it would improve the objective)")
    else:
        lines.append("  no constraint binds: the objective is at its unconstrained best")
    lines += _alternatives(m, extra, value, shown)
    lines.append(f"  solver: HiGHS, {result.solve_s * 1e3:.0f} ms; {result.certification}")
    return "\n".join(lines)


def _optimum_costs(metrics) -> list[str]:
    """The optimum's power against its budget (where there is one), and its time, hours and dollars."""
    shown = power_lines(metrics.power) if metrics.power is not None and metrics.power.budget_w is not None else []
    return shown + [line for line in training_lines(metrics.training) if line]


def _alternatives(m, extra: dict, value: float, shown: str) -> list[str]:
    """The runner-up (the best plan in another mode; a tie is called one) and the next best."""
    from trainwall.challenges.grading import show_objective

    def changes(plan: dict) -> str:
        return ", ".join(f"{k.split('.', 1)[1]} = {v}" for k, v in plan["changes"].items())

    def alternative(plan: dict) -> str:
        return f"{changes(plan)} gives {m.objective.quantity} {show_objective(m.objective.quantity, plan['objective'])}"

    lines = []
    second, nearest = extra.get("runner_up"), extra.get("next_best")
    if second and second["objective"] == value:
        lines.append(f"  runner-up: {changes(second)} ties the optimum (the tie-break keeps the mission file's order)")
    elif second:
        lines.append(f"  runner-up: {alternative(second)} instead of {shown}")
    if nearest and nearest["tied_modes"]:
        lines.append(f"  {nearest['tied_modes']} other mode(s) tie the optimum; the next best: "
                     + (alternative(nearest) if nearest["objective"] is not None else "not searched further"))
    return lines


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    out, start, prev = [], None, None
    for i in sorted(indices):
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = prev = i
    if start is not None:
        out.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(out) or "none"
