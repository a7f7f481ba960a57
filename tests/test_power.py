"""Power and energy: the catalog's figures against their datasheets and measurements, the
energy of a step and the duty cycle worked by hand, and the power wall of the hearable
mission (tiny/3), which binds at its certified optimum.

Datasheets and measurements: tests/reference/training_cost.toml, section 2 (device power).
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

import pytest
import tomli_w

from trainwall.core.config import load_config, parse_config
from trainwall.core.errors import InputError
from trainwall.hardware import catalog as hw
from trainwall.optimizer.costmodel import evaluate

REFERENCE = tomllib.loads(Path("tests/reference/training_cost.toml").read_text())["device_power"]
TINY3 = Path("challenges/tiny/3.toml")


def test_microcontroller_power_is_its_datasheet_current_times_its_supply():
    """nRF52840 Product Specification at 3 V, DC/DC: run from flash, System ON with the RAM
    kept (an event wakes it while it waits; the RTC between learning bursts), the chip
    transmitting at 0 dBm with its crystal running."""
    nrf, radio, board = REFERENCE["nrf52840"], REFERENCE["nrf52840_radio"], hw.device("nrf52840")
    volts = nrf["test_supply_v"]
    assert board.power_w == pytest.approx(nrf["cpu_running_flash_dcdc_ma"] * 1e-3 * volts, rel=1e-12)
    assert board.idle_power_w == pytest.approx(nrf["system_on_full_ram_any_event_ua"] * 1e-6 * volts, rel=1e-12)
    assert board.sleep_power_w == pytest.approx(nrf["system_on_full_ram_rtc_ua"] * 1e-6 * volts, rel=1e-12)
    assert board.radio_power_w == pytest.approx(radio["scenario_tx_0dbm_dcdc_ma"] * 1e-3 * volts, rel=1e-12)


def test_gpu_power_is_its_tdp_busy_and_its_measured_idle_with_a_context():
    h100 = hw.device("h100-sxm")
    assert h100.power_w == REFERENCE["h100_sxm5"]["max_tdp_w"]
    assert h100.idle_power_w == REFERENCE["h100_sxm_idle"]["cuda_ctx_idle_w"]
    assert hw.device("a100-sxm-80gb").power_w == REFERENCE["a100_sxm4"]["max_tdp_w"]
    dgx = REFERENCE["dgx_h100"]
    assert hw.device("h100-sxm").host.power_w == pytest.approx(dgx["measured_max_kw"] * 1e3 - 8 * h100.power_w)


def test_a_training_node_draws_what_h100_nodes_are_measured_to_draw():
    """Newkirk et al. 2025: compute-intensive work draws 76 % of a DGX H100's 10.2 kW rating;
    Latif et al. 2025: Llama-2-13B training, median 7.92 kW, at most 8.4 kW. The cloud
    example's node (8 GPUs busy 78 % of each step, idle the rest, and its host) within 10 %."""
    m = evaluate(load_config("examples/cloud.toml"))
    node_w = m.power.system_w / (m.devices / 8)
    measured = REFERENCE["dgx_h100"]["measured_node_fraction_of_rating"] * REFERENCE["dgx_h100"]["max_system_power_kw"]
    assert abs(node_w / (measured * 1e3) - 1) <= 0.10
    assert node_w <= REFERENCE["dgx_h100"]["measured_max_kw"] * 1e3


def test_a_steps_energy_is_each_state_at_its_power():
    """Worked from evaluate's own step parts: busy at the power limit, waiting (bubble,
    exposed communication, data stall) at idle, plus the radio while it communicates."""
    for example in ("examples/cloud.toml", "examples/tiny.toml"):
        m = evaluate(load_config(example))
        t, p = m.time, m.power
        waiting = t.bubble_s + t.exposed_communication_s + t.data_stall_s
        assert t.compute_s + waiting == pytest.approx(t.step_s, rel=1e-12)
        hand = p.busy_w * t.compute_s + p.idle_w * waiting + p.radio_w * t.exposed_communication_s
        assert p.device_energy_per_step_j == pytest.approx(hand, rel=1e-12), example
        assert p.learning_w == pytest.approx(hand / t.step_s, rel=1e-12)
        assert p.duty_cycle == 1.0 and p.average_w == p.learning_w      # no stream: it learns all the time
    run = m.training
    assert run is None or run.energy_kwh == pytest.approx(run.seconds / 3600 * p.system_w / 1000, rel=1e-12)


def _tiny3(**changes) -> dict:
    raw = tomllib.loads(TINY3.read_text())["scenario"]
    raw = {section: dict(values) for section, values in raw.items()}
    for dotted, value in changes.items():
        section, name = dotted.split(".")
        raw[section][name] = value
    return raw


def test_the_duty_cycle_and_average_power_worked_by_hand():
    """A group of boards learning from R fresh keywords an hour, each trained echo times:
    the boards learn R echo / (3600 B) of the time (B samples a step), and each averages
    its sleep power plus that share of what learning adds."""
    raw = _tiny3(**{"training.data_parallel": 8, "system.devices": 8, "training.global_batch": 512,
                    "training.local_steps": 16})
    m = evaluate(parse_config(raw, "tiny/3 on 8 boards"))
    p, rate, echo = m.power, raw["data"]["samples_per_hour"], raw["data"]["echo"]
    steps_per_hour = rate * echo / 512
    duty = steps_per_hour * m.time.step_s / 3600
    assert p.duty_cycle == pytest.approx(duty, rel=1e-12)
    assert p.average_w == pytest.approx(p.sleep_w * (1 - duty) + p.learning_w * duty, rel=1e-12)
    assert p.average_w <= p.budget_w and m.feasible


def test_the_power_wall_is_broken_by_too_few_boards_and_by_a_stream_too_fast():
    four = evaluate(parse_config(_tiny3(), "tiny/3 on 4 boards, one sample a step"))
    assert [v.constraint for v in four.violations] == ["power"]
    assert "budget" in four.violations[0].message and four.power.average_w > four.power.budget_w
    fast = evaluate(parse_config(_tiny3(**{"data.samples_per_hour": 1e7}), "a stream no group keeps up with"))
    assert fast.power.duty_cycle > 1 and "cannot keep up" in fast.violations[0].message
    free = evaluate(parse_config(_tiny3(**{"system.power_budget_w": None}), "no budget"))
    assert free.feasible and free.power.budget_w is None


@functools.cache
def _solved(budget_w: float | None = None):
    """tiny/3 solved, as shipped or at another budget."""
    from trainwall.challenges.mission import parse_mission
    from trainwall.challenges.solve import solve

    raw = tomllib.loads(TINY3.read_text())
    if budget_w is not None:
        raw["scenario"]["system"]["power_budget_w"] = budget_w
    return solve(parse_mission(raw, f"tiny/3 at {budget_w or 'its'} budget"))


def test_the_hearables_power_wall_binds_at_its_certified_optimum():
    """tiny/3: 1 mW a board, 2,000 keywords an hour. Lifting the budget (a watt: above what
    any board draws) lets the fewest boards (the best MFU) learn everything; with it, the
    optimum spreads the stream over more boards, and the exhaustive certifier agrees."""
    result, free = _solved(), _solved(1.0)
    assert "power" in result.binding and result.certified
    assert result.metrics.power.average_w <= result.metrics.power.budget_w
    assert result.slack["power"]["slack"] >= 0
    assert free.certified and "power" not in free.binding and free.objective > result.objective
    assert result.metrics.devices > free.metrics.devices


def test_a_mission_gives_a_budget_exactly_when_it_has_the_power_wall(tmp_path):
    from trainwall.challenges.mission import load_mission

    raw = tomllib.loads(TINY3.read_text())
    raw["constraints"].remove("power")
    path = tmp_path / "mission.toml"
    path.write_text(tomli_w.dumps(raw))
    with pytest.raises(InputError, match="power_budget_w"):
        load_mission(path)


def test_the_readme_states_the_hearables_power_as_solve_computes_it():
    """The optimum's duty cycle and average power, and what the best plan without the budget
    (fewer boards) would draw under the shipped stream."""
    result, free = _solved(), _solved(1.0)
    p, best = result.metrics.power, free.metrics
    plan = {f"training.{k}": v for k, v in free.configuration["training"].items()}
    fewer = evaluate(parse_config(_tiny3(**plan, **{"system.devices": best.devices}), "the best plan")).power
    stated = (f"over {result.metrics.devices} nRF52840 boards, each learning {p.duty_cycle:.1%} of the time at "
              f"{p.learning_w * 1e3:.2f} mW and asleep at\n{p.sleep_w * 1e6:.2f} uW otherwise: "
              f"{p.average_w * 1e3:.3f} mW on average (the best plan, on {best.devices} boards,\nwould need "
              f"{fewer.average_w * 1e3:.2f} mW each)")
    assert stated in Path("README.md").read_text(), stated


def test_the_glasses_power_is_assumed_from_whole_glasses_figures_and_duty_cycles():
    """No AR1-class SoC power is published: the catalog takes Qualcomm's 'less than 1 W' glasses
    as its draw while training and the Ray-Ban Display's 960 mWh over 6 h while it waits, and
    says so; learning from a stream, the glasses average sleep + duty x (learning - sleep)."""
    glasses, ref = hw.device("ar-glasses-soc"), REFERENCE["ar_glasses"]
    assert glasses.power_w == ref["whole_glasses_w_max"] and "ssumed" in glasses.power_source
    assert glasses.idle_power_w == pytest.approx(ref["ray_ban_display_battery_mwh"] / 1000 / ref["ray_ban_display_hours"])
    raw = tomllib.loads(Path("examples/mobile.toml").read_text())
    raw.setdefault("data", {})["samples_per_hour"] = 600.0
    m = evaluate(parse_config(raw, "glasses learning from 600 frames an hour"))
    p, echo, batch = m.power, raw["data"].get("echo", 1), m.samples_per_s * m.time.step_s   # samples a step
    duty = 600.0 * echo * m.time.step_s / (3600 * batch)
    assert p.duty_cycle == pytest.approx(duty, rel=1e-12) and p.duty_cycle < 1
    assert p.average_w == pytest.approx(p.sleep_w + duty * (p.learning_w - p.sleep_w), rel=1e-12)
