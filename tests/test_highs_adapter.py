"""The matrix-form way to HiGHS (optimizer/highs.py, MatrixModel), on models solved by hand:
every way a solve ends becomes our Status, changes between solves take effect, and the
reference options (tolerances, seed, one thread, zero gaps) are the ones the Pyomo way sets."""

from __future__ import annotations

import pytest

from trainwall.optimizer.highs import TOLERANCES, MatrixModel, Status, reference_options

INF = float("inf")


def _knapsack(**options) -> MatrixModel:
    """max x + 3 y  s.t.  x + 2 y <= 7.5,  x, y integers in [0, 10]: y = 3, x = 1, value 10
    (y = 3.75 is not an integer; x + 2y = 7 leaves x = 1)."""
    lp = MatrixModel(**options)
    lp.add_columns(2, 0, 10, integer=True)
    lp.add_rows([(-INF, 7.5, (0, 1), (1.0, 2.0))])
    lp.set_objective({0: 1.0, 1: 3.0}, maximise=True)
    return lp


def test_an_integer_optimum_by_hand():
    lp = _knapsack()
    res = lp.solve()
    assert res.status is Status.OPTIMAL and res.termination == "kOptimal"
    assert res.objective == 10.0 and res.mip_gap == 0.0
    assert list(lp.values) == [1.0, 3.0]


def test_changes_between_solves_take_effect():
    lp = _knapsack()
    lp.solve()
    lp.set_bounds(1, 0, 2)                         # y <= 2: x = 3, value 9
    assert lp.solve().objective == 9.0 and list(lp.values) == [3.0, 2.0]
    lp.set_coefficient(0, 0, 1.5)                  # 1.5 x + 2 y <= 7.5: (2, 2) 8 beats (3, 1) 6 and (5, 0) 5
    assert lp.solve().objective == 8.0 and list(lp.values) == [2.0, 2.0]
    lp.set_row_bounds(0, -INF, 4.5)                # 1.5 x + 2 y <= 4.5: (0, 2) 6 beats (1, 1) 4 and (3, 0) 3
    assert lp.solve().objective == 6.0 and list(lp.values) == [0.0, 2.0]
    lp.add_rows([(-INF, 1.0, (1,), (1.0,))])       # a cut, y <= 1: (1, 1) 4 beats (3, 0) 3
    assert lp.solve().objective == 4.0 and list(lp.values) == [1.0, 1.0]
    lp.set_objective({1: 1.0})                     # minimise y: 0
    assert lp.solve().objective == 0.0


def test_every_ending_is_a_status():
    infeasible = _knapsack()
    infeasible.add_rows([(8.0, INF, (0, 1), (1.0, 2.0))])     # x + 2 y >= 8 against <= 7.5
    res = infeasible.solve()
    assert res.status is Status.INFEASIBLE and res.objective is None
    assert _knapsack(time_limit=0.0).solve().status is Status.LIMIT
    unbounded = MatrixModel()
    unbounded.add_columns(1, 0, INF)
    unbounded.set_objective({0: 1.0}, maximise=True)
    assert unbounded.solve().status is Status.UNBOUNDED
    empty = MatrixModel()
    empty.add_rows([(1.0, 1.0, (), ())])
    empty.set_objective({})
    assert empty.solve().status is Status.ERROR


def test_the_same_model_gives_the_same_bytes():
    first, second = _knapsack(), _knapsack()
    first.solve(), second.solve()
    assert first.values.tobytes() == second.values.tobytes()


def test_the_reference_options_are_set_and_cannot_be_loosened():
    lp = _knapsack(options={"primal_feasibility_tolerance": 1e-3, "mip_heuristic_effort": 0.1})
    option = lambda name: lp._highs.getOptionValue(name)[1]   # noqa: E731 - (status, value)
    for name, value in TOLERANCES.items():
        assert option(name) == value                         # a formulation cannot loosen them
    assert option("mip_heuristic_effort") == 0.1              # speed options pass
    assert option("threads") == 1 and option("random_seed") == 0 and option("output_flag") is False
    assert option("mip_rel_gap") == 0.0 and option("mip_abs_gap") == 0.0
    assert option("presolve_rule_off") == reference_options()["presolve_rule_off"]


@pytest.mark.parametrize("count", [0, 3])
def test_columns_are_numbered_in_order(count):
    lp = MatrixModel()
    first = lp.add_columns(count, 0, 1)
    second = lp.add_columns(2, 0, 1, integer=True)
    assert list(first) == list(range(count)) and list(second) == [count, count + 1] and lp.columns == count + 2
