"""The walls that bind, checked a second way: a wall binds when lifting it buys a better
objective. The search answers with the MILP (and skips a wall that cuts no mode's range);
here every part-3 mission's imposed walls are lifted one at a time in the exhaustive
certifier (numpy, no MILP) and the binding sets must agree."""

from __future__ import annotations

import dataclasses

import pytest

from trainwall.challenges.mission import mission, shipped_ids
from trainwall.challenges.problems import scaling_problem
from trainwall.challenges.solve import solve
from trainwall.optimizer import certify
from trainwall.optimizer.scaling_wall import TIE


@pytest.mark.parametrize("mission_id", [i for i in shipped_ids() if mission(i).part == 3])
def test_the_binding_walls_are_the_enumerations(mission_id):
    m = mission(mission_id)
    problem, _ = scaling_problem(m)
    best = certify.scaling_wall(problem).objective
    better = (lambda v: v > best * (1 + TIE)) if problem.objective == "mfu" else (lambda v: v < best * (1 - TIE))
    binding = []
    for wall in problem.walls:
        lifted = certify.scaling_wall(dataclasses.replace(problem, walls=tuple(w for w in problem.walls if w != wall)))
        if lifted.feasible and better(lifted.objective):
            binding.append(wall)
    assert tuple(binding) == solve(m).binding
