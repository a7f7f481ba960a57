"""Per-student variants whose answers differ: over a 30-student roster, how many distinct
optimal configurations each shipped mission's `trainwall generate` gives.

The goal (issue 14) is 24 of 30 (80 %) for every mission. The table holds what each
mission reaches today, so a change that narrows the spread fails here; a mission below
24 says why. Two kinds of reason:

* a ceiling of the decision space itself: the optimum can only be one of a few
  configurations, whatever the scenario (tiny/1: one utterance of a 6-layer network in at
  most 240 KB leaves three layer sets that can be optimal; edge/2, mobile/2 and tiny/2
  choose among 8 or 16 configurations in all);
* not widened yet (edge/1, cloud/3, edge/3, mobile/1, mobile/3, tiny/3): their
  perturbation axes were widened once and reach what the table says; more axes are open
  work. Integrity there rests also on the per-variant Lock answers and on each variant
  being bound to its student (docs/THREAT_MODEL.md).
"""

from __future__ import annotations

import json

import pytest

from trainwall.challenges.mission import mission, shipped_ids
from trainwall.challenges.variants import distinct_optima, generate, numbered_students

GOAL = 24
#: mission -> distinct optimal configurations of 30 students at seed 1 (at least)
REACHED = {"cloud/1": 24, "cloud/2": 24, "cloud/3": 15, "edge/1": 1, "edge/2": 1, "edge/3": 19, "mobile/1": 14,
           "mobile/2": 2, "mobile/3": 20, "tiny/1": 3, "tiny/2": 1, "tiny/3": 22}


def test_the_table_covers_every_shipped_mission():
    assert set(REACHED) == set(shipped_ids())


@pytest.mark.parametrize("mission_id", sorted(REACHED))
def test_a_roster_of_30_gets_distinct_optima(mission_id):
    variants = generate(mission(mission_id), 1, numbered_students(30), jobs=2, progress=False)
    distinct = distinct_optima(variants)
    assert distinct == len({json.dumps(v.optimum["configuration"], sort_keys=True) for v in variants})
    assert distinct >= REACHED[mission_id], f"{mission_id}: {distinct} distinct optima of 30"

