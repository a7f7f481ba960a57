"""The ``trainwall`` command line (INTERFACE.md). Heavy modules load per command."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INFEASIBLE = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors are bad input: exit 2, one line
        self.print_usage(sys.stderr)
        print(f"trainwall: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trainwall", description="The Model Training lab as missions a solver can answer.")
    from trainwall import __version__

    p.add_argument("--version", action="version", version=f"trainwall {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = sub.add_parser("evaluate", help="evaluate one configuration file")
    ev.add_argument("config", help="a TOML, JSON or YAML configuration")
    ev.add_argument("--json", action="store_true", help="print INTERFACE.md's JSON instead of text")
    ms = sub.add_parser("missions", help="list the lab's missions")
    ms.add_argument("--json", action="store_true", help="print JSON instead of text")
    so = sub.add_parser("solve", help="the proven-optimal configuration of a mission")
    so.add_argument("mission", help="a mission id (mobile/1) or a mission / variant file")
    so.add_argument("--json", action="store_true", help="print INTERFACE.md's JSON instead of text")
    return p


def _missions(args: argparse.Namespace) -> int:
    from trainwall.challenges.mission import PARTS, mission, shipped_ids

    rows = []
    for mid in shipped_ids():
        m = mission(mid)
        decisions = list(m.decisions) + (["training.trainable (per layer)"] if m.select_layers else [])
        rows.append({"id": m.id, "track": m.track, "part": m.part, "title": m.title,
                     "objective": {"name": m.objective.quantity, "sense": m.objective.sense},
                     "decisions": decisions, "constraints": list(m.constraints)})
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        for r in rows:
            print(f"{r['id']:<9} {PARTS[r['part']]:<14} {r['title']}")
            print(f"{'':<9} {r['objective']['sense']} {r['objective']['name']}; decides {', '.join(r['decisions'])}")
    return EXIT_OK


def _solve(args: argparse.Namespace) -> int:
    from trainwall.challenges.mission import resolve
    from trainwall.challenges.solve import solve
    from trainwall.optimizer.highs import Status

    result = solve(resolve(args.mission))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True, allow_nan=False, default=float))
    else:
        from trainwall.report import solution_report

        print(solution_report(result))
    if result.status is Status.OPTIMAL:
        return EXIT_OK
    return EXIT_INFEASIBLE if result.status is Status.INFEASIBLE else EXIT_INTERNAL


def _evaluate(args: argparse.Namespace) -> int:
    from trainwall.api import evaluate_file
    from trainwall.report import text_report

    config, metrics = evaluate_file(args.config)
    if args.json:
        print(json.dumps(metrics.to_dict(), indent=2, sort_keys=True, allow_nan=False, default=float))
    else:
        print(text_report(config, metrics, args.config))
    return EXIT_OK if metrics.feasible else EXIT_INFEASIBLE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from trainwall.errors import TrainwallError

    try:
        return {"evaluate": _evaluate, "missions": _missions, "solve": _solve}[args.command](args)
    except TrainwallError as exc:
        print(f"trainwall: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, traceback on request
        if os.environ.get("TRAINWALL_DEBUG"):
            raise
        print(f"trainwall: internal error: {type(exc).__name__}: {exc} (set TRAINWALL_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
