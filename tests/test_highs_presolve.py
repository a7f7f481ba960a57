"""HiGHS's presolve: the rules trainwall switches off are the ones it means, and no solve of
a shipped mission's variants hangs in presolve.

HiGHS does not check its time limit everywhere in presolve (ERGO-Code/HiGHS issues 1501,
2226): HiGHS 1.16's Aggregator rule never returned on some tiny/3 variants, so a time limit
cannot be what protects a grader. The regression test runs those variants in a child process
with a deadline, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from trainwall.optimizer.highs import ALWAYS_OFF, PRESOLVE_RULE_BITS, presolve_rules_off

#: The names HiGHS prints for the rules (``log_dev_level`` 1).
HIGHS_NAMES = {"aggregator": "Aggregator", "probing": "Probing"}


def _printed_rules(tmp_path) -> dict[int, str]:
    """bit -> rule name, as the installed HiGHS lists them when presolving with logging on."""
    import highspy

    log = tmp_path / "highs.log"
    h = highspy.Highs()
    h.setOptionValue("output_flag", True)
    h.setOptionValue("log_to_console", False)
    h.setOptionValue("log_file", str(log))
    h.setOptionValue("log_dev_level", 1)
    h.addVar(0.0, 1.0)
    h.changeColIntegrality(0, highspy.HighsVarType.kInteger)
    h.changeColCost(0, 1.0)
    h.presolve()
    return {int(bit): name.strip() for bit, name in re.findall(r"set bit +(\d+) = +\d+\): (.+)", log.read_text())}


def test_the_rule_bits_are_the_installed_highs_numbering(tmp_path):
    printed = _printed_rules(tmp_path)
    assert printed, "HiGHS printed no presolve rule table"
    for rule, bit in PRESOLVE_RULE_BITS.items():
        assert printed.get(bit) == HIGHS_NAMES[rule], f"bit {bit} is {printed.get(bit)!r}, not {HIGHS_NAMES[rule]}"


def test_every_solve_switches_the_looping_rule_off():
    from trainwall.optimizer.highs import Solver

    mask = Solver(None)._options["presolve_rule_off"]
    for rule in ALWAYS_OFF:
        assert mask & (1 << PRESOLVE_RULE_BITS[rule])
    assert presolve_rules_off("probing") == mask | (1 << PRESOLVE_RULE_BITS["probing"])


#: tiny/3 draws (samples per round, channel load, MFU target; 4 boards) whose runner-up search
#: stayed in HiGHS's presolve for minutes before the Aggregator rule was switched off.
HUNG = [(248, 0.6, 0.08), (296, 0.5, 0.08), (296, 0.5, 0.09), (416, 0.5, 0.08), (416, 0.5, 0.09)]

CHILD = textwrap.dedent("""
    import copy, sys
    from trainwall.challenges.mission import mission, parse_mission
    from trainwall.challenges.prose import render_mission_data
    from trainwall.challenges.solve import solve
    from trainwall.challenges.variants import _strip_none
    from trainwall.optimizer.highs import Status

    base = _strip_none(mission("tiny/3").model_dump())
    base.pop("variants", None)
    for batch, load, target in {hung}:
        data = copy.deepcopy(base)
        data["scenario"]["system"]["background_network_load"] = load
        data["limits"].update(global_batch=batch, min_devices=4)
        data["objective"]["target"] = target
        solution = solve(parse_mission(render_mission_data(data), "hung draw"))
        assert solution.status is Status.OPTIMAL and solution.certified, (batch, load, target, solution.status)
        print(batch, load, target, "solved", flush=True)
""")


def test_the_draws_that_hung_in_presolve_solve():
    run = subprocess.run([sys.executable, "-c", CHILD.format(hung=HUNG)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("solved") == len(HUNG)
