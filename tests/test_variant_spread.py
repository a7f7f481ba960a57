"""Per-student variants whose answers differ: over a 30-student roster, how many distinct
optimal configurations each shipped mission's `trainwall generate` gives.

The goal (issue 14) is 24 of 30 (80 %) for every mission. The table holds what each
mission reaches today at seed 1, so a change that narrows the spread fails here. Every
mission below 24 is there because of a ceiling of its decision space: the optimum can only
be one of a few configurations, whatever the scenario, so a roster of 30 must repeat them.

* tiny/1: one utterance of a 6-layer network in at most 240 KB leaves three layer sets
  that can be optimal; edge/2, mobile/2 and tiny/2 choose among 8 or 16 configurations
  in all.
* edge/1: the optimum is always the leanest plan (fp16 with dynamic loss scaling, SGD,
  full recompute) at the largest micro-batch that fits, so the micro-batch is the whole
  answer. While the story holds (the first try, fp32 Adam with 16 frames, fits) that is
  64, 128 or 256 frames: 3 configurations.
* mobile/1: the optimum is always SGD and fp16 mixed (full recompute above 259 MiB); only
  the trained layers change with the memory budget, and 25 layer sets can be optimal between
  258 and 512 MiB (the table draws one budget for each). 30 draws of 25 equally likely
  answers repeat some: about 18 distinct on average, 15 at seed 1.

The part-3 missions (edge/3, mobile/3, tiny/3) reach 24 largely through the batch limit:
the optimum fills each step or round to the limit, so neighbouring limits are different
answers whose MFU can differ by less than the full-credit band. cloud/3, which asks for the
fewest dollars, reaches 16: below its cheapest global batch the limit binds and 1,024-GPU
layouts round it down to a multiple of 16, so neighbouring limits share an answer; the
deadline's draws add 512-GPU answers (multiples of 8). It reached 20 before the tensor-
parallel backward overlap and NCCL's achievable bandwidths made communication cheaper: the
cheapest batch grew past more of the drawn limits. Integrity
there rests also on the per-variant Lock answers and on each variant being bound to its
student (docs/THREAT_MODEL.md).
"""

from __future__ import annotations

import json

import pytest

from trainwall.challenges.mission import mission, shipped_ids
from trainwall.challenges.variants import distinct_optima, generate, numbered_students

GOAL = 24
#: mission -> distinct optimal configurations of 30 students at seed 1 (at least)
REACHED = {"cloud/1": 24, "cloud/2": 24, "cloud/3": 16, "edge/1": 3, "edge/2": 1, "edge/3": 24, "mobile/1": 15,
           "mobile/2": 2, "mobile/3": 25, "tiny/1": 3, "tiny/2": 1, "tiny/3": 27}


def test_the_table_covers_every_shipped_mission():
    assert set(REACHED) == set(shipped_ids())


@pytest.mark.parametrize("mission_id", sorted(REACHED))
def test_a_roster_of_30_gets_distinct_optima(mission_id):
    variants = generate(mission(mission_id), 1, numbered_students(30), jobs=2, progress=False)
    distinct = distinct_optima(variants)
    assert distinct == len({json.dumps(v.optimum["configuration"], sort_keys=True) for v in variants})
    assert distinct >= REACHED[mission_id], f"{mission_id}: {distinct} distinct optima of 30"

