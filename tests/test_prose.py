"""A mission's prose is rendered from its data: stories, Lock texts and reflections cannot
contradict the numbers the solver and the grader use (issue 12: cloud/3's story said 2,048
sequences while its limit was 4,096)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from trainwall.challenges.mission import lookup, mission, parse_mission, shipped_ids
from trainwall.challenges.prose import ProseError, placeholders, render
from trainwall.core.errors import MissionError

#: The mission data a story may state: what the solver, the grader and a variant change.
STATED = ("limits", "objective", "scenario", "naive")


def _prose(m) -> list[tuple[str, str]]:
    return ([("story", m.story), ("title", m.title)] + [(f"lock.{i}.text", q.text) for i, q in enumerate(m.lock)]
            + [(f"reflection.{i}", p) for i, p in enumerate(m.reflection)])


def _numbers(value, path: str = ""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _numbers(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def _spellings(value: float) -> set[str]:
    """How prose would write a stated number: 4096 / 4,096; 0.95 as 95 % / 95%."""
    if 0 < value < 1:
        pct = f"{value * 100:g}"
        return {f"{pct} %", f"{pct}%"}
    if value >= 10 and float(value).is_integer():
        return {f"{int(value)}", f"{int(value):,}"}
    return set()


def _stated_numbers(m) -> dict[str, set]:
    """Each number of the mission's stated data (and every value a variant may draw for it)."""
    data = m.model_dump()
    found = {path: {value} for section in STATED for path, value in _numbers(data.get(section) or {}, section)}
    if m.variants is not None:
        for path, values in m.variants.perturb.items():
            found.setdefault(path, set()).update(v for v in values if isinstance(v, (int, float)))
    return found


def _literal_text(template: str) -> str:
    return re.sub(r"\{[^{}]*\}", " ", template)


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_prose_states_no_data_number_literally(mission_id):
    """A number that is the mission's data (a limit, a budget, a load, the current plan, a target,
    or any value a variant may draw for it) appears in prose only as a placeholder."""
    m = mission(mission_id)
    stated = _stated_numbers(m)
    for field, template in _prose(m):
        text = _literal_text(template)
        for path, values in stated.items():
            for value in values:
                for spelled in _spellings(value):
                    hit = re.search(rf"(?<![\w.,]){re.escape(spelled)}(?![\w]|[.,]\d)", text)
                    assert hit is None, (f"{mission_id} {field} states {spelled!r} literally; it is {path} in the "
                                         f"mission's data: write a placeholder, e.g. {{{path}}}")


@pytest.mark.parametrize("mission_id", [m for m in shipped_ids() if mission(m).variants is not None])
def test_every_variant_draw_renders_its_own_numbers(mission_id):
    """Every value a variant may draw renders; where the prose names the drawn path, two
    different draws tell two different stories (the prose follows the data)."""
    m = mission(mission_id)
    base = m.model_dump()
    for path, values in m.variants.perturb.items():
        named = any(path in p for _, t in _prose(m) for p in placeholders(t))
        stories = {}
        for value in values:
            data = parse_mission(base, "copy").model_dump()
            *parents, leaf = path.split(".")
            lookup(data, ".".join(parents))[leaf] = value
            drawn = parse_mission(data, f"{mission_id} with {path} = {value}")
            prose = tuple(t for _, t in _prose(drawn.rendered()))
            assert all("{" not in t and "}" not in t for t in prose)
            stories[value] = prose
        if named:
            assert len(set(stories.values())) == len(values), (path, "two draws render the same prose")


def test_rendering_formats_paths_and_arithmetic():
    data = {"limits": {"global_batch": 4096, "devices": 1024}, "scenario": {"system": {"load": 0.95}}}
    assert render("at most {limits.global_batch:,} sequences", data) == "at most 4,096 sequences"
    assert render("{1 - scenario.system.load:.0%} left", data) == "5% left"
    assert render("{limits.devices / 8:,.0f} nodes", data) == "128 nodes"
    assert render("no placeholder", data) == "no placeholder"


@pytest.mark.parametrize("template, reason", [
    ("{limits.missing}", "sets no limits.missing"),
    ("{__import__('os')}", "only paths"),
    ("{limits.devices.__class__}", "sets no"),
    ("{limits.devices / 0}", "divides by zero"),
    ("{limits.devices:q}", "cannot format"),
    ("a {{ brace", "literal braces"),
    ("{limits}", "not a number"),
])
def test_a_bad_placeholder_is_named(template, reason):
    with pytest.raises(ProseError, match=re.escape(reason)):
        render(template, {"limits": {"devices": 1024}})


def test_a_mission_with_a_bad_placeholder_is_the_missions_error(tmp_path):
    data = mission("cloud/3").model_dump()
    data["reflection"] = ["fine", "a {limits.gpus} typo"]
    with pytest.raises(MissionError) as err:
        parse_mission(data, "course/cloud3.toml")
    message = str(err.value)
    assert "course/cloud3.toml" in message and "reflection.1" in message and "limits.gpus" in message


def test_missions_shows_the_rendered_brief_without_answers():
    run = subprocess.run([sys.executable, "-m", "trainwall.cli", "show", "cloud/3"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert "{" not in run.stdout and "naive_mfu" in run.stdout
    answers = mission("cloud/3").lock_answers()
    assert not any(f"{v:.3g}" in run.stdout for v in answers.values())
