"""Our two ways to HiGHS, with one set of options and one vocabulary of outcomes.

* :class:`Solver`, over Pyomo's persistent HiGHS interface (``pyomo.contrib.solver``): a
  formulation builds its Pyomo model once and re-solves it after changing mutable
  parameters or bounds (parts 1 and 2, whose models are a few hundred rows).
* :class:`MatrixModel`, over highspy directly: a formulation states its columns and rows
  as numbers, in batches, and changes costs, bounds and coefficients in place between
  solves. Part 3 has a row per wall and mode - thousands, rebuilt for every variant - and
  Pyomo's persistent interface spent most of a variant's CPU walking their expressions
  (issue 18: 0.45 of 0.9 CPU-seconds for a cloud/3 variant).

Both map every way a solve can end to our :class:`Status`, so callers never see a bare "it
failed". Reference solves are deterministic: one thread, zero relative and absolute MIP
gap, HiGHS's fixed random seed, the walls' feasibility tolerance (docs/DESIGN.md,
"Optimisation").

Pyomo and highspy are imported lazily (on the first model): the CLI's other commands stay fast.
"""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trainwall.optimizer.walls import TOLERANCE


class Status(enum.Enum):
    """How a solve ended, in our words (linopy's habit: a typed status, never a string)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    LIMIT = "limit"      # time or iteration limit: the incumbent, if any, is not proven optimal
    ERROR = "error"


#: pyomo.contrib.solver TerminationCondition name -> our status.
_TERMINATION = {
    "convergenceCriteriaSatisfied": Status.OPTIMAL,
    "provenInfeasible": Status.INFEASIBLE,
    "locallyInfeasible": Status.INFEASIBLE,
    "infeasibleOrUnbounded": Status.INFEASIBLE,  # our models are bounded: every variable has finite bounds
    "unbounded": Status.UNBOUNDED,
    "maxTimeLimit": Status.LIMIT,
    "iterationLimit": Status.LIMIT,
    "objectiveLimit": Status.LIMIT,
    "minStepLength": Status.LIMIT,
    "interrupted": Status.LIMIT,
    "error": Status.ERROR,
    "licensingProblems": Status.ERROR,
    "emptyModel": Status.ERROR,
    "unknown": Status.ERROR,
}


#: HiGHS's own model status (``HighsModelStatus``) -> our status; any other (a load, presolve,
#: solve or postsolve error, an empty model, a memory limit, unknown) is an ERROR. Pyomo's
#: interface reads the same statuses into the names of :data:`_TERMINATION`.
_MODEL_STATUS = {
    "kOptimal": Status.OPTIMAL,
    "kInfeasible": Status.INFEASIBLE,
    "kUnboundedOrInfeasible": Status.INFEASIBLE,   # our models are bounded
    "kUnbounded": Status.UNBOUNDED,
    "kTimeLimit": Status.LIMIT,
    "kIterationLimit": Status.LIMIT,
    "kObjectiveBound": Status.LIMIT,
    "kObjectiveTarget": Status.LIMIT,
    "kSolutionLimit": Status.LIMIT,
    "kInterrupt": Status.LIMIT,
    "kHighsInterrupt": Status.LIMIT,
}


#: Relative differences this small are rounding: eight units in the last place of a double.
ROUNDING = 8 * sys.float_info.epsilon


@dataclass(frozen=True)
class SolveResult:
    status: Status
    objective: float | None
    bound: float | None
    seconds: float
    termination: str     # Pyomo's own name for it, kept for the record

    @property
    def mip_gap(self) -> float | None:
        """|bound - incumbent| / max(1, |incumbent|); a gap within a few units of the last place
        (the bound and the incumbent summed in different orders) is 0: no plan lies inside it."""
        if self.objective is None or self.bound is None:
            return None
        gap = abs(self.bound - self.objective) / max(1.0, abs(self.objective))
        return 0.0 if gap <= ROUNDING else gap


#: Feasibility tolerances of reference solves. HiGHS's defaults (1e-7 for rows, 1e-6 for
#: a MIP's rows) would admit a configuration whose MFU lies 1e-6 below a level the
#: lexicographic stages hold; the models are scaled to O(1), so the walls' one tolerance
#: (:data:`trainwall.optimizer.walls.TOLERANCE`, 1e-9) is attainable, and the MILP draws
#: the line where the cost model and the certifiers draw it.
TOLERANCES = {"primal_feasibility_tolerance": TOLERANCE, "mip_feasibility_tolerance": TOLERANCE}

#: Bits of HiGHS's ``presolve_rule_off`` (numbered as HiGHS 1.16 prints them with
#: ``log_dev_level``; tests/test_highs_presolve.py checks the numbering against the installed
#: HiGHS). Rule 12, the Aggregator, never returned on some part-3 models: tiny/3 variants (4
#: boards, a 50-60 % busy channel, 248, 296 or 416 samples per round, an 8-9 % target) stayed
#: in presolve for more than 500 s, and HiGHS does not check its time limit there
#: (ERGO-Code/HiGHS issues 1501 and 2226 report presolve outliving the limit). Switching the
#: rule off (and it alone was enough on each) leaves its substitutions to branch and bound:
#: the optimum and its proof are the same.
PRESOLVE_RULE_BITS = {"aggregator": 12, "probing": 15}
#: The rules every solve switches off.
ALWAYS_OFF = ("aggregator",)


def presolve_rules_off(*rules: str) -> int:
    """The ``presolve_rule_off`` mask for ``rules`` and :data:`ALWAYS_OFF`."""
    return sum(1 << PRESOLVE_RULE_BITS[rule] for rule in sorted(set(rules) | set(ALWAYS_OFF)))


#: What makes a solve a proof and repeatable: one thread, and no MIP gap, absolute or relative.
EXACT_AND_SERIAL = {"threads": 1, "mip_rel_gap": 0.0, "mip_abs_gap": 0.0}


def reference_options(options: Mapping | None = None) -> dict:
    """HiGHS's options for a reference solve: the fixed seed, no log, the rules every solve
    switches off, a formulation's own speed ``options``, then :data:`EXACT_AND_SERIAL` and
    :data:`TOLERANCES` (no formulation loosens them)."""
    return {"random_seed": 0, "output_flag": False, "presolve_rule_off": presolve_rules_off(),
            **(options or {}), **EXACT_AND_SERIAL, **TOLERANCES}


class Solver:
    """One persistent HiGHS instance bound to one Pyomo model."""

    def __init__(self, model, time_limit: float = 60.0, parameters_only: bool = False,
                 options: dict | None = None):
        """``options``: HiGHS options of this formulation (speed only: never a tolerance or a gap;
        a ``presolve_rule_off`` mask comes from :func:`presolve_rules_off`).
        ``parameters_only``: the caller promises that between solves only mutable
        parameters, variable bounds and the objective change (no constraint activated,
        added or removed, no variable fixed), so the persistent interface skips
        re-scanning the constraints - the difference between 0.1 s and a few ms per re-solve."""
        from pyomo.contrib.solver.solvers.highs import Highs

        self.model = model
        self._highs = Highs()
        self._time_limit = time_limit
        self._options = reference_options(options)
        self._updates = ({"check_for_new_or_removed_constraints": False, "check_for_new_or_removed_vars": False,
                          "check_for_new_or_removed_params": False, "update_constraints": False,
                          "update_vars": True, "update_named_expressions": False, "update_parameters": True,
                          "check_for_new_objective": False, "update_objective": True}
                         if parameters_only else {})
        self._added = False

    def constraints_added(self) -> None:
        """The caller added constraints (a cut) since the last solve: the next solve looks for them."""
        self._added = True

    def solve(self) -> SolveResult:
        """Solve (or re-solve) the model; on OPTIMAL / LIMIT with an incumbent, load it."""
        start = time.perf_counter()
        try:
            updates = {**self._updates, "check_for_new_or_removed_constraints": True} if self._added else self._updates
            self._added = False
            res = self._highs.solve(self.model, time_limit=self._time_limit, load_solutions=False,
                                    raise_exception_on_nonoptimal_result=False, auto_updates=updates,
                                    solver_options=self._options)
        except Exception as exc:  # HiGHS or Pyomo raised: report it, never crash the caller
            return SolveResult(Status.ERROR, None, None, time.perf_counter() - start, f"error: {exc}")
        name = res.termination_condition.name
        status = _TERMINATION.get(name, Status.ERROR)
        objective = res.incumbent_objective
        if objective is not None and status in (Status.OPTIMAL, Status.LIMIT):
            res.solution_loader.load_vars()
        bound = res.objective_bound
        return SolveResult(status, objective, bound if bound is not None and abs(bound) < float("inf") else None,
                           time.perf_counter() - start, name)


class PinnedByBounds:
    """What parts 1 and 2's Pyomo formulations change between solves, by variable bounds only, so
    a persistent solver re-solves without rebuilding. The formulation has ``model.relax`` (each
    wall's r_w), ``model.u`` (each mode's binary) and ``problem.walls`` (the imposed walls)."""

    def lift(self, wall: str, lifted: bool = True) -> None:
        """Drop (or restore) one wall: pin its r_w to 1 (lifted) when asked or when the problem does
        not impose the wall, else to 0 (held)."""
        value = float(lifted or wall not in self.problem.walls)
        self.model.relax[wall].setlb(value)
        self.model.relax[wall].setub(value)

    def allow(self, mode: int, allowed: bool = True) -> None:
        """Forbid (or allow again) one mode, by its binary's upper bound: for the runner-up."""
        self.model.u[mode].setub(int(allowed))


#: A row: (lower, upper, its columns, their coefficients); +-inf for a side without a bound.
Row = tuple[float, float, Sequence[int], Sequence[float]]


class MatrixModel:
    """A MILP in matrix form, built and re-solved through highspy directly.

    Columns and rows are added in batches (:meth:`add_columns`, :meth:`add_rows`); between
    solves a formulation changes the objective, column and row bounds and single coefficients
    in place, and may add rows (cuts). HiGHS re-solves a MILP from scratch either way; what
    the matrix form saves is the modelling layer. ``values`` holds the last incumbent.

    highspy's ``_Highs`` (the binding it exports, which ``highspy.Highs`` extends with Python
    callbacks and a solver thread) is used: it prints no banner and runs in this thread.
    """

    def __init__(self, time_limit: float = 60.0, options: Mapping | None = None):
        import highspy

        self._highspy = highspy
        self._highs = highspy._Highs()
        settings = {**reference_options(options), "time_limit": float(time_limit)}
        for name, value in settings.items():
            self._highs.setOptionValue(name, value)
        self.columns = 0
        self.rows = 0
        self.values = np.zeros(0)

    def add_columns(self, count: int, lower: float, upper: float, integer: bool = False) -> np.ndarray:
        """``count`` new columns with these bounds (integers when ``integer``): their indices."""
        index = np.arange(self.columns, self.columns + count, dtype=np.int32)
        if count:
            self._highs.addVars(count, np.full(count, float(lower)), np.full(count, float(upper)))
            if integer:
                kind = np.full(count, self._highspy.HighsVarType.kInteger.value, dtype=np.uint8)
                self._highs.changeColsIntegrality(count, index, kind)
        self.columns += count
        return index

    def add_rows(self, rows: Sequence[Row]) -> np.ndarray:
        """New rows lower <= sum_j a_j x_j <= upper, one call to HiGHS: their indices."""
        index = np.arange(self.rows, self.rows + len(rows), dtype=np.int32)
        if rows:
            lower = np.array([r[0] for r in rows], dtype=float)
            upper = np.array([r[1] for r in rows], dtype=float)
            sizes = np.array([len(r[2]) for r in rows], dtype=np.int32)
            starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int32)
            columns = np.fromiter((j for r in rows for j in r[2]), dtype=np.int32, count=int(sizes.sum()))
            values = np.fromiter((a for r in rows for a in r[3]), dtype=float, count=int(sizes.sum()))
            self._highs.addRows(len(rows), lower, upper, int(sizes.sum()), starts, columns, values)
        self.rows += len(rows)
        return index

    def set_bounds(self, column: int, lower: float, upper: float) -> None:
        self._highs.changeColBounds(int(column), float(lower), float(upper))

    def set_row_bounds(self, row: int, lower: float, upper: float) -> None:
        self._highs.changeRowBounds(int(row), float(lower), float(upper))

    def set_coefficient(self, row: int, column: int, value: float) -> None:
        self._highs.changeCoeff(int(row), int(column), float(value))

    def set_objective(self, costs: Mapping[int, float], maximise: bool = False) -> None:
        """The objective sum_j costs[j] x_j (every other column's cost 0), to maximise or minimise."""
        full = np.zeros(self.columns)
        for column, cost in costs.items():
            full[column] += cost
        self._highs.changeColsCost(self.columns, np.arange(self.columns, dtype=np.int32), full)
        sense = self._highspy.ObjSense.kMaximize if maximise else self._highspy.ObjSense.kMinimize
        self._highs.changeObjectiveSense(sense)

    def solve(self) -> SolveResult:
        """Solve (or re-solve) the model; on OPTIMAL / LIMIT with an incumbent, keep it in ``values``."""
        start = time.perf_counter()
        try:
            self._highs.run()
            name = self._highs.getModelStatus().name
            info = self._highs.getInfo()
            feasible = info.primal_solution_status == self._highspy.SolutionStatus.kSolutionStatusFeasible.value
        except Exception as exc:  # HiGHS raised: report it, never crash the caller
            return SolveResult(Status.ERROR, None, None, time.perf_counter() - start, f"error: {exc}")
        status = _MODEL_STATUS.get(name, Status.ERROR)
        objective = info.objective_function_value if feasible else None
        if objective is not None and status in (Status.OPTIMAL, Status.LIMIT):
            self.values = np.array(self._highs.getSolution().col_value)
        bound = info.mip_dual_bound
        return SolveResult(status, objective, bound if abs(bound) < float("inf") else None,
                           time.perf_counter() - start, name)
