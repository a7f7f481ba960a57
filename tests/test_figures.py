"""trainwall plot and explain: a file of the right type for every track, the data drawn equals
the cost model's numbers (tested through the figure's data, not its pixels), and the same
input gives the same bytes."""

import math
import tomllib
from pathlib import Path

import pytest

from trainwall import explain, figures
from trainwall.challenges import answers
from trainwall.challenges.mission import mission
from trainwall.cli import main
from trainwall.core.config import load_config, parse_config
from trainwall.optimizer.costmodel import evaluate, step_structure

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TRACKS = ("cloud", "edge", "mobile", "tiny")
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}


def plot(tmp_path, figure, subject, suffix=".png", *extra):
    out = tmp_path / f"{figure}{suffix}"
    assert main(["plot", figure, str(subject), "-o", str(out), *extra]) == 0
    return out.read_bytes()


@pytest.mark.parametrize("track", TRACKS)
@pytest.mark.parametrize("figure", ("waterfall", "scaling", "pipeline", "compare"))
def test_every_track_gets_each_figure(tmp_path, track, figure):
    extra = ("--compare",) if figure == "compare" else ()
    name = "waterfall" if figure == "compare" else figure
    assert plot(tmp_path, name, EXAMPLES / f"{track}.toml", ".png", *extra).startswith(MAGIC[".png"])


def test_a_microcontroller_compares_fp32_only():
    """The nRF52840 computes in fp32 or int8: no mixed-precision row."""
    grid = figures.optimizer_grid(load_config(EXAMPLES / "tiny.toml"))
    assert [w.label for w in grid] == ["sgd fp32", "momentum fp32", "adam fp32"]


@pytest.mark.parametrize("suffix", (".png", ".svg", ".pdf"))
def test_format_follows_the_extension_and_bytes_are_deterministic(tmp_path, suffix):
    first = plot(tmp_path, "waterfall", EXAMPLES / "mobile.toml", suffix, "--compare")
    second = plot(tmp_path, "waterfall", EXAMPLES / "mobile.toml", suffix, "--compare")
    assert first.startswith(MAGIC[suffix]) and first == second
    if suffix == ".svg":
        assert b"<svg" in first and b"<dc:date>" not in first
    if suffix == ".pdf":
        assert b"CreationDate" not in first


@pytest.mark.parametrize("figure", ("scaling", "pipeline"))
def test_mission_figures_are_deterministic(tmp_path, figure):
    assert plot(tmp_path, figure, "cloud/3", ".svg") == plot(tmp_path, figure, "cloud/3", ".svg")


def test_explain_figure_is_deterministic(tmp_path):
    paths = [tmp_path / "a.pdf", tmp_path / "b.pdf"]
    for path in paths:
        assert main(["explain", str(EXAMPLES / "cloud.toml"), "-o", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes() and paths[0].read_bytes().startswith(b"%PDF-")


def test_bad_extension_is_bad_input(tmp_path, capsys):
    assert main(["plot", "waterfall", str(EXAMPLES / "mobile.toml"), "-o", str(tmp_path / "x.jpg")]) == 2
    assert "must end in .png, .svg or .pdf" in capsys.readouterr().err
    assert main(["plot", "scaling", str(EXAMPLES / "mobile.toml"), "--compare", "-o", str(tmp_path / "x.png")]) == 2
    assert "--compare draws optimizers" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


# --- the data drawn is the cost model's ---------------------------------------------------------

@pytest.mark.parametrize("track", TRACKS)
def test_waterfall_bars_are_the_memory_breakdown(track):
    config = load_config(EXAMPLES / f"{track}.toml")
    memory = evaluate(config).memory
    w = figures.waterfall(config)
    assert dict(w.bars) == {"weights": memory.weights, "gradients": memory.gradients,
                            "optimizer_state": memory.optimizer_state, "activations": memory.activations,
                            "other": memory.other}
    assert sum(v for _, v in w.bars) == pytest.approx(w.total) and w.capacity == memory.capacity


def test_compare_shows_adams_state_at_twice_the_weights():
    """fp32 Adam on one device: 4 + 4 + 8 bytes per parameter (ZeRO paper, sec. 3.1), so the
    optimizer-state bar is 2x the weights and the hidden memory (gradients + state) 3x - plus
    PyTorch's one step counter per parameter tensor (632 B here), hence rel 1e-3."""
    grid = {w.label: w for w in figures.optimizer_grid(load_config(EXAMPLES / "mobile.toml"))}
    assert list(grid) == ["sgd fp32", "momentum fp32", "adam fp32", "sgd fp16 mixed", "momentum fp16 mixed",
                          "adam fp16 mixed"]
    adam = dict(grid["adam fp32"].bars)
    assert adam["optimizer_state"] == pytest.approx(2 * adam["weights"], rel=1e-3)
    assert adam["optimizer_state"] > 2 * adam["weights"]
    assert adam["gradients"] + adam["optimizer_state"] == pytest.approx(3 * adam["weights"], rel=1e-3)
    assert grid["adam fp32"].bytes_per_param["total"] == pytest.approx(16.0, rel=1e-3)
    assert grid["sgd fp32"].bytes_per_param["optimizer_state"] == 0.0
    assert grid["momentum fp32"].bytes_per_param["optimizer_state"] == pytest.approx(4.0)


def test_scaling_points_are_evaluations_of_the_swept_configurations():
    config = load_config(EXAMPLES / "cloud.toml")
    s = figures.scaling(config, "cloud")
    t = config.training
    assert s.at == (config.system.devices, config.global_batch)
    assert config.system.devices in s.devices and len(s.devices) >= 4
    for i, devices in enumerate(s.devices):
        dp = devices // (t.tensor_parallel * t.pipeline_parallel)
        data = load_config(EXAMPLES / "cloud.toml").model_dump(exclude_none=True)
        data["system"]["devices"] = devices
        data["training"].update(data_parallel=dp, global_batch=config.micro_batches * dp * t.micro_batch)
        m = evaluate(parse_config(data))
        assert (s.mfu[i], s.scaling_efficiency[i], s.comm_to_compute[i], s.network_utilization[i]) == \
            (m.mfu, m.scaling_efficiency, m.comm_to_compute, m.network_utilization)
    for batch, value in zip(s.global_batch, s.mfu_by_batch):
        data = load_config(EXAMPLES / "cloud.toml").model_dump(exclude_none=True)
        data["training"]["global_batch"] = batch
        assert value == evaluate(parse_config(data)).mfu
    assert s.mfu_by_batch == tuple(sorted(s.mfu_by_batch))   # a larger batch amortises the bubble


@pytest.mark.parametrize("mission_id", ["cloud/2", "edge/2", "mobile/2", "tiny/2"])
def test_pipeline_balance_point_is_the_certified_optimum(mission_id):
    """The balance point on the curve is where part 2's solver, certified by enumeration, puts
    the optimum - drawn from the optimum's other choices."""
    _, ((_, _), (_, best_config)) = figures.subjects(mission_id)
    lever = mission(mission_id).objective.quantity
    gauge = figures.pipeline(best_config, lever=lever, max_wait=mission(mission_id).max_data_wait)
    best = answers.optimum(mission(mission_id))
    assert gauge.lever == lever
    assert gauge.balance_point == best.configuration["data"][lever]
    metrics = evaluate(best_config)
    flow, echo = metrics.pipeline, best_config.data.echo
    # one unit on the whole figure: training samples/s (fresh x echo), like the curve beside it
    # what the step achieves, per host (each part-2 mission is one host): evaluate's throughput,
    # below the max-flow where loading cannot overlap compute (tiny/2)
    assert gauge.rate == pytest.approx(metrics.samples_per_s, rel=1e-9)
    assert gauge.demand == flow.capacities["compute"] * echo
    assert gauge.capacities["Data"] == min(flow.capacities["storage"], flow.capacities["cpu"]) * echo
    assert gauge.capacities["Bus"] == flow.capacities["host_link"] * echo
    assert gauge.needed[gauge.settings.index(gauge.current)] == gauge.demand
    # the utilisations are evaluate's, stage by stage (issue 12: the figure said 100 % busy
    # where evaluate reported a 42 % stall)
    data_stage = min(("storage", "cpu"), key=lambda s: flow.capacities[s])
    assert gauge.utilization == {"Data": metrics.pipeline_utilization[data_stage],
                                 "Bus": metrics.pipeline_utilization["host_link"],
                                 "Compute": metrics.pipeline_utilization["compute"]}
    assert gauge.longest_pole == ("Compute" if flow.bottleneck == "compute" else
                                  "Bus" if flow.bottleneck == "host_link" else "Data")


def test_a_starved_plan_shows_data_as_the_longest_pole():
    _, ((_, naive), _) = figures.subjects("cloud/2")
    gauge = figures.pipeline(naive)
    assert gauge.longest_pole == "Data" and gauge.utilization["Data"] == 1.0
    assert gauge.rate < gauge.demand and gauge.current == 1


# --- the Math Peek ----------------------------------------------------------------------------------

def _number(text: str) -> float:
    return float(text.split()[0].rstrip("%")) / (100 if text.split()[0].endswith("%") else 1)


@pytest.mark.parametrize("track", TRACKS)
def test_math_peek_results_are_the_cost_models(track):
    config = load_config(EXAMPLES / f"{track}.toml")
    m = evaluate(config)
    peek = explain.math_peek(config, track)
    iron, mfu, states, _, bubble, *run = peek.terms
    assert _number(iron.result) == pytest.approx(m.time.step_s, rel=1e-3)
    t = m.time                                                     # the Iron Law adds the step's own parts
    assert t.compute_s + t.bubble_s + t.exposed_communication_s + t.data_stall_s == pytest.approx(t.step_s, rel=1e-12)
    assert m.model_flops_per_step / (m.devices * m.reference_peak * m.mfu) == pytest.approx(m.time.step_s, rel=1e-12)
    if m.training is None:
        assert not run
    else:
        assert _number(run[0].result.replace(",", "")) == pytest.approx(m.training.days, rel=1e-3)
    assert _number(mfu.result) == pytest.approx(m.mfu, abs=5e-5)
    assert _number(states.result) == pytest.approx(m.memory.bytes_per_param()["total"], rel=1e-2)
    assert _number(bubble.result) == pytest.approx(m.time.bubble_s, rel=1e-3, abs=1e-12)


def _arithmetic(text: str) -> float:
    """The value of a substituted formula's plain arithmetic (numbers with their units, + - * /
    and brackets)."""
    import ast
    import operator
    import re

    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}

    def value(node):
        if isinstance(node, ast.BinOp):
            return ops[type(node.op)](value(node.left), value(node.right))
        assert isinstance(node, ast.Constant), ast.dump(node)
        return node.value
    return value(ast.parse(re.sub(r"\s(?:B/s|s/B|B|s)\b", "", text).strip(), mode="eval").body)


def _peek_cases():
    cases = [(track, load_config(EXAMPLES / f"{track}.toml")) for track in TRACKS]
    raw = tomllib.loads((EXAMPLES / "cloud.toml").read_text())
    raw["training"]["virtual_stages"] = 2
    zero3 = parse_config({"workload": {"model": "llama-3-8b", "seq_len": 2048},
                          "system": {"accelerator": "h100-sxm", "devices": 8},
                          "training": {"optimizer": "adam", "precision": "bf16-mixed", "micro_batch": 2,
                                       "global_batch": 32, "data_parallel": 8, "zero_stage": 3}}, "ZeRO-3")
    return cases + [("cloud, interleaved", parse_config(raw, "cloud, interleaved")), ("ZeRO-3", zero3)]


@pytest.mark.parametrize("label, config", _peek_cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_math_peek_substitution_gives_its_result(label, config):
    """What the Math Peek substitutes is what it states: the printed arithmetic of the Iron Law,
    MFU, the data-parallel collective (the gradient all-reduce, or ZeRO-3's weight all-gather,
    three per micro-batch) and the bubble (1F1B's, and the interleaved schedule's divided by v)
    evaluates to the printed result, to the 4 significant figures printed."""
    iron, mfu, _, collective, bubble, *_ = explain.math_peek(config, label).terms
    assert _arithmetic(iron.text_substituted.split(" = ")[1]) == pytest.approx(_number(iron.result), rel=2e-3)
    assert _arithmetic(mfu.text_substituted.removeprefix("MFU = ")) == pytest.approx(_number(mfu.result), rel=2e-3)
    if "no gradient to exchange" not in collective.text_substituted:
        assert _arithmetic(collective.text_substituted.split(" = ", 1)[1]) == pytest.approx(
            _number(collective.result), rel=2e-3)
    assert ("ZeRO-3 weight all-gather" in collective.title) == (label == "ZeRO-3")
    if label == "ZeRO-3":
        assert 3 * config.micro_batches * _number(collective.result) == pytest.approx(
            evaluate(config).time.data_parallel_s, rel=2e-3)
    seconds, share = bubble.text_substituted.removeprefix("t_bubble = ").split(";")
    assert _arithmetic(seconds) == pytest.approx(_number(bubble.result), rel=2e-3, abs=1e-12)
    fraction, printed = share.split("=")
    assert _arithmetic(fraction) == pytest.approx(float(printed), abs=5e-4)
    assert ("v = 2" in bubble.title) == ("interleaved" in label)


def test_ring_all_reduce_term_is_the_textbook_formula_on_the_models_plan(tmp_path):
    """A data-parallel group inside one DGX node is a ring over NVLink: 2(n-1)/n x S / B +
    2(n-1) alpha with B the link's bus bandwidth (NCCL's share of the line rate) equals the plan's
    time for the gradient buffer."""
    config = parse_config({"workload": {"model": "gpt-2", "seq_len": 1024}, "system": {"accelerator": "h100-sxm", "devices": 8},
                           "training": {"optimizer": "adam", "precision": "bf16-mixed", "micro_batch": 4,
                                        "global_batch": 32}})
    st = step_structure(config)
    plan, S, n = st.data_parallel_plan, st.data_parallel_bytes, 8
    term = explain.math_peek(config).terms[3]
    assert plan.algorithm == "ring all-reduce" and "ring" in term.title
    bandwidth = 2 * (n - 1) / n / plan.seconds_per_byte
    alpha = plan.latency / (2 * (n - 1))
    assert 2 * (n - 1) / n * S / bandwidth + 2 * (n - 1) * alpha == pytest.approx(plan.time(S), rel=1e-12)
    assert _number(term.result) == pytest.approx(st.dp_fixed_s, rel=1e-3)
    from trainwall.hardware import catalog as hw

    nvlink = hw.link("nvlink4")
    assert bandwidth == pytest.approx(nvlink.bandwidth * nvlink.achievable, rel=1e-9)   # NVLink at NCCL's bus bandwidth
    assert math.isclose(S, evaluate(config).memory.gradients, rel_tol=1e-9)   # bf16 gradients, all of them


def test_explain_prints_formula_numbers_and_result(capsys):
    assert main(["explain", str(EXAMPLES / "cloud.toml")]) == 0
    out = capsys.readouterr().out
    for needle in ("Iron Law", "T = T_compute + T_bubble + T_exposed + T_stall", "MFU = O / (T * N * R_peak)",
                   "b = b_weights", "all-reduce", "t_bubble = (p-1) * t_stage", "T_train = S(B) * T"):
        assert needle in out


def _captured(monkeypatch, draw):
    """The matplotlib figure a draw call builds (saving is replaced by capturing)."""
    from trainwall import plotting

    captured = []
    monkeypatch.setattr(plotting, "save", lambda fig, path: captured.append(fig))
    draw()
    return captured[0]


def test_series_differ_by_more_than_hue(monkeypatch):
    """Readable in greyscale and for colour-blind readers: each waterfall bar has its own hatch
    or is the outlined total, and each scaling series its own marker and line style."""
    from trainwall import plotting

    config = load_config(EXAMPLES / "mobile.toml")
    fig = _captured(monkeypatch, lambda: plotting.draw_waterfalls([figures.waterfall(config)], "x.png", "t"))
    bars = fig.axes[0].patches
    hatches = [bar.get_hatch() or "" for bar in bars[:5]]
    assert len(set(hatches)) == 5 and bars[5].get_facecolor()[:3] == (1.0, 1.0, 1.0)
    series = [figures.scaling(c, label) for label, c in figures.subjects("mobile/3")[1]]
    fig = _captured(monkeypatch, lambda: plotting.draw_scaling(series, "x.png", "t", 0.03))
    data = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1 and line.get_marker() != "None"]
    styles = {(line.get_marker(), line.get_linestyle()) for line in data}
    assert len(data) == len(styles) == 4     # MFU and efficiency, for the plan and the optimum


def test_plot_and_explain_read_the_plan_of_a_submission(tmp_path, capsys):
    """A student keeps one file: evaluate, plot and explain all read a submission's plan."""
    from trainwall.cli import main

    own = tmp_path / "mine.toml"
    assert main(["start", "mobile/2", "-o", str(own)]) == 0
    assert main(["plot", "pipeline", str(own), "-o", str(tmp_path / "p.png")]) == 0
    assert main(["explain", str(own)]) == 0
    assert "Math Peek: mine" in capsys.readouterr().out
    assert main(["generate", "mobile/2", "--count", "1", "--seed", "5", "--out", str(tmp_path / "v"), "--jobs", "1"]) == 0
    handout = tmp_path / "v" / "handouts" / "variant-1"
    variant = handout / "submission.toml"
    assert main(["plot", "waterfall", str(variant), "-o", str(tmp_path / "w.png")]) == 2   # which variant?
    assert "--mission" in capsys.readouterr().err
    assert main(["plot", "waterfall", str(variant), "-o", str(tmp_path / "w.png"),
                 "--mission", str(handout / "mission.toml")]) == 0
    assert main(["explain", str(variant), "--mission", str(handout / "mission.toml")]) == 0
    assert main(["explain", "mobile/2", "--mission", str(handout / "mission.toml")]) == 2     # not a submission
