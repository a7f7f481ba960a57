"""The ``trainwall`` command line (docs/INTERFACE.md). Heavy modules load per command."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INFEASIBLE = 0, 1, 2, 3
#: The reader closed the pipe (``trainwall missions | head``): what a program killed by SIGPIPE returns.
EXIT_CLOSED_PIPE = 128 + 13


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors are bad input: exit 2, one line
        self.print_usage(sys.stderr)
        _say(message)
        raise SystemExit(EXIT_BAD_INPUT)


def _student_commands(sub) -> None:
    """``show`` (a mission's brief) and ``start`` (a submission holding its current plan)."""
    sh = sub.add_parser("show", help="one mission's brief: story, decisions, walls, Lock questions, reflection")
    sh.add_argument("mission", help="a mission id (cloud/3) or a mission / variant file (a handout's mission.toml)")
    sh.add_argument("--json", action="store_true", help="print JSON instead of text")
    st = sub.add_parser("start", help="write a submission that holds a mission's current plan, to explore from")
    st.add_argument("mission", help="a mission id (cloud/3) or a mission / variant file (a handout's mission.toml)")
    st.add_argument("-o", "--output", default="submission.toml", help="the file to write (default submission.toml)")
    st.add_argument("--student", help="your student id (a variant is graded only for its student)")
    st.add_argument("--force", action="store_true", help="replace an existing file")


def _merge_command(sub) -> None:
    mg = sub.add_parser("merge", help="join the shards of grade --shard K/N (or of generate --shard K/N)",
                        description="Graded shards (with --submissions): copy their results into --output and write "
                                    "summary.csv, the charts and the gradebook as one unsharded run would, byte for "
                                    "byte. Generated shards (without): one handouts/ and keys/ with index.csv.")
    mg.add_argument("shards", nargs="+", help="the shards' --output (grade) or --out (generate) folders")
    mg.add_argument("--submissions", help="the class folder the shards graded (grade shards only)")
    mg.add_argument("--output", required=True, help="the merged results folder")
    mg.add_argument("--mission", help="as given to the shards")
    mg.add_argument("--format", default="text", choices=("text", "json", "gradescope", "prairielearn", "junit"),
                    help="as given to the shards")
    mg.add_argument("--roster", help="the roster CSV: gradebook.csv for an LMS import")
    mg.add_argument("--assignment", default="trainwall", help="gradebook.csv's points column (default: trainwall)")


def _backend_options(parser, scope: str) -> None:
    """--backend and --ray-address: where the work runs (challenges/ray_backend.py)."""
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help=f"{scope}where the work runs: this machine's processes (default) or a Ray cluster "
                             "(pip install 'trainwall[ray]'); the same files either way")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="the Ray cluster for --backend ray (default: RAY_ADDRESS, else a local instance)")


def _instructor_commands(sub) -> None:
    """grade, generate and autograder: what a course runs."""
    gr = sub.add_parser("grade", help="grade a submission, or a folder of them",
                        epilog="exit codes: 0 graded (any score), 3 graded but under --fail-under, 2 a malformed "
                               "submission or a bad --mission, 1 the grader itself failed; a results file is "
                               "written in every case")
    gr.add_argument("submission", help="a submission file (TOML, JSON or YAML), or a folder of them")
    gr.add_argument("--mission", help="grade against this mission id, mission / variant file, or answer-key folder")
    gr.add_argument("--format", default="text", choices=("text", "json", "gradescope", "prairielearn", "junit"))
    gr.add_argument("--output", help="write the results file here (for a folder: the results folder)")
    gr.add_argument("--platform-path", action="store_true",
                    help="write to the platform's own path (/autograder/results/results.json for gradescope, "
                         "/grade/results/results.json for prairielearn)")
    gr.add_argument("--identity", metavar="METADATA",
                    help="who submitted, as the platform says (Gradescope's submission_metadata.json): a variant "
                         "is graded only for the account it was drawn for")
    gr.add_argument("--roster", help="a folder's roster CSV: gradebook.csv for an LMS import (its rows, plus points)")
    gr.add_argument("--assignment", default="trainwall", help="gradebook.csv's points column (default: trainwall)")
    gr.add_argument("--fail-under", type=float, metavar="S", help="exit 3 when the score is below S")
    gr.add_argument("--jobs", type=int, default=0, help="worker processes for a folder (default: every core)")
    gr.add_argument("--shard", type=_shard, metavar="K/N",
                    help="a folder: grade only shard K of N (results and records, no class outputs: "
                         "trainwall merge joins the shards)")
    _backend_options(gr, "a folder: ")
    _merge_command(sub)
    ge = sub.add_parser("generate", help="per-student variants of a mission: handouts apart from answer keys")
    ge.add_argument("mission", help="a mission id (cloud/3) or a mission file with [variants.perturb]")
    who = ge.add_mutually_exclusive_group(required=True)
    who.add_argument("--count", type=int, help="this many variants (variant-001, ...)")
    who.add_argument("--roster", help="a CSV roster: one variant per student id (column 'student', else the first)")
    ge.add_argument("--seed", type=_seed, required=True,
                    help="the same seed and roster give the same files (0 to 2^63 - 1)")
    ge.add_argument("--out", required=True, help="folder for handouts/ and keys/")
    ge.add_argument("--jobs", type=int, default=0, help="worker processes (default: every core)")
    ge.add_argument("--shard", type=_shard, metavar="K/N",
                    help="only shard K of N of the roster (every N-th student from the K-th): "
                         "trainwall merge joins the shards")
    _backend_options(ge, "")
    ge.add_argument("--force", action="store_true",
                    help="replace the handouts/ and keys/ an earlier run left in --out (refused without it)")
    au = sub.add_parser("autograder", help="write an autograder bundle: Gradescope (setup.sh, run_autograder, "
                        "answer keys) or PrairieLearn (a grading image, one question per mission)")
    au.add_argument("platform", choices=("gradescope", "prairielearn"))
    au.add_argument("mission", nargs="+",
                    help="mission ids or files, or generate output folders (every variant): one assignment")
    au.add_argument("--out", required=True, help="the bundle's folder (Gradescope: zip its contents)")
    au.add_argument("--install", help="the pip requirement setup.sh installs instead of this trainwall's own wheel")
    au.add_argument("--points", action="append", default=[], metavar="MISSION=P",
                    help="a mission's points in the assignment (default: its grading.max_score)")
    au.add_argument("--visibility", choices=("visible", "hidden", "after_due_date", "after_published"),
                    help="when students see the results (Gradescope only; default visible)")
    au.add_argument("--image", help="PrairieLearn only, required there: the Docker image the questions are "
                    "graded in, built and pushed from the bundle's image/ folder (myorg/trainwall-grader:1)")


def _lab_command(sub) -> None:
    lb = sub.add_parser("lab", help="the workbench in a browser: toggles, sliders, live instruments, "
                        "Locks, a recorded move log, Submit (pip install 'trainwall[lab]')")
    lb.add_argument("mission", nargs="?", help="a mission id, a handout, a mission file, or a configuration "
                    "(explored in a sandbox with a part's levers; none: a picker)")
    lb.add_argument("--out", help="where Submit writes (default: submission.toml; for a configuration, "
                    "configuration.toml)")
    lb.add_argument("--port", type=int, help="the port on 127.0.0.1 (default: a free one)")
    lb.add_argument("--no-browser", action="store_true", help="print the URL only (a server without a browser)")
    lb.add_argument("--keys", help="instructor mode: Submit also grades against these answers (an answer-key "
                    "folder from generate, or what grade's --mission takes); without it the workbench holds no key")


def _lab(args: argparse.Namespace) -> int:
    from trainwall.lab.launch import serve

    if args.mission is not None:
        _nonempty(args.mission, "MISSION")
    if args.out is not None:
        _nonempty(args.out, "--out")
    if args.keys is not None:
        _nonempty(args.keys, "--keys")
    return serve(args.mission, args.out, args.port, not args.no_browser, args.keys)


def _regrade_command(sub) -> None:
    rg = sub.add_parser("regrade", help="whose scores change (and why) when a mission or its keys are fixed")
    rg.add_argument("submission", help="the class folder graded before")
    rg.add_argument("--results", required=True, help="the earlier grade's --output folder (its summary.csv)")
    rg.add_argument("--mission", required=True, help="the fixed mission id or file, or the new answer-key folder")
    rg.add_argument("--output", help="write the changes as CSV here (default: stdout)")
    rg.add_argument("--jobs", type=int, default=0, help="worker processes (default: every core)")


def _regrade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwall.challenges import grading
    from trainwall.challenges.regrade import changes_csv, regrade
    from trainwall.core.outputs import atomic_write, check_target

    for value, option in ((args.submission, "SUBMISSION"), (args.results, "--results"), (args.mission, "--mission"),
                          (args.output, "--output")):
        _nonempty(value, option)
    if args.output:
        given = _mission_inputs(args.mission)
        check_target(args.output, "--output", folder=False, files=[p for p in given if not os.path.isdir(p)],
                     folders=[args.submission, args.results, *(p for p in given if os.path.isdir(p))])
    changes = regrade(Path(args.submission), grading.MissionSource.open(args.mission), Path(args.results), args.jobs)
    text = changes_csv(changes)
    if args.output:
        atomic_write(args.output, text)
        _say(f"{len(changes)} submissions change -> {args.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trainwall", description="The Model Training lab as missions a solver can answer.")
    from trainwall import __version__

    p.add_argument("--version", action="version", version=f"trainwall {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = sub.add_parser("evaluate", help="evaluate one configuration file, or the plan a submission describes")
    ev.add_argument("config", help="a TOML, JSON or YAML configuration, or a submission (its mission's plan)")
    ev.add_argument("--mission", help="a submission's mission file, for a variant (a handout's mission.toml)")
    ev.add_argument("--json", action="store_true", help="print docs/INTERFACE.md's JSON instead of text")
    ms = sub.add_parser("missions", help="list the lab's missions")
    ms.add_argument("--json", action="store_true", help="print JSON instead of text")
    _student_commands(sub)
    so = sub.add_parser("solve", help="the proven-optimal configuration of a mission")
    so.add_argument("mission", help="a mission id (mobile/1) or a mission / variant file")
    so.add_argument("--json", action="store_true", help="print docs/INTERFACE.md's JSON instead of text")
    so.add_argument("--instructor", action="store_true", help="solve a student handout (it refuses without)")
    _instructor_commands(sub)
    _regrade_command(sub)
    _lab_command(sub)
    pl = sub.add_parser("plot", help="the lab's figures (PNG, SVG or PDF by the file's extension)")
    pl.add_argument("figure", choices=("waterfall", "scaling", "pipeline", "train"))
    pl.add_argument("subject", help="a configuration or submission file, or a mission (its current plan and its "
                                    "optimum)")
    pl.add_argument("-o", "--output", required=True, help="FILE.png, FILE.svg or FILE.pdf")
    pl.add_argument("--compare", action="store_true",
                    help="waterfall: SGD / Momentum / Adam x fp32 / mixed precision side by side")
    pl.add_argument("--instructor", action="store_true", help="draw a student handout's optimum (refused without)")
    pl.add_argument("--mission", help="a submission's mission file, for a variant (a handout's mission.toml)")
    ex = sub.add_parser("explain", help="the Math Peek: each formula with this configuration's numbers")
    ex.add_argument("subject", help="a configuration or submission file, or a mission (its optimum)")
    ex.add_argument("-o", "--output", help="also render the formulas as a figure (PNG, SVG or PDF)")
    ex.add_argument("--instructor", action="store_true", help="explain a student handout's optimum (refused without)")
    ex.add_argument("--mission", help="a submission's mission file, for a variant (a handout's mission.toml)")
    sc = sub.add_parser("schema", help="print the JSON Schema of a file format")
    sc.add_argument("kind", choices=("config", "submission", "mission"))
    return p


def _ray_address(args: argparse.Namespace) -> str | None:
    """--ray-address, which only --backend ray reads."""
    if args.ray_address is not None and args.backend != "ray":
        raise _usage("--ray-address names the cluster of --backend ray")
    if args.ray_address is not None and not args.ray_address.strip():
        raise _usage("--ray-address must name a Ray cluster (host:port, ray://host:port or auto), not an empty string")
    return args.ray_address


def _generate(args: argparse.Namespace) -> int:
    from trainwall.challenges.classroom import in_shard
    from trainwall.challenges.mission import resolve
    from trainwall.challenges.variants import (check_out, distinct_optima, generate, numbered_students, read_roster,
                                               write)
    from trainwall.core.outputs import clean

    _nonempty(args.mission, "MISSION")
    _nonempty(args.roster, "--roster")
    inputs = [p for p in (args.mission, args.roster) if p is not None and os.path.lexists(p)]
    check_out(args.out, args.force, inputs)       # before any work: a wrong --out costs nothing
    mission = resolve(args.mission)
    students = read_roster(args.roster) if args.roster else numbered_students(args.count)
    mine = in_shard(students, *args.shard) if args.shard else students
    variants = generate(mission, args.seed, mine, args.jobs, backend=args.backend, address=_ray_address(args))
    out = write(variants, mission, args.seed, args.out, args.force, inputs, roster=students)
    redrawn = sum(1 for v in variants if v.attempt)
    distinct = distinct_optima(variants)
    shard = f"shard {args.shard[0]}/{args.shard[1]} of {len(students)} students: " if args.shard else ""
    print(clean(f"{shard}{len(variants)} variants of {mission.id} ({redrawn} redrawn to stay good exercises), "
                f"{distinct} distinct optimal configuration{'' if distinct == 1 else 's'} "
                f"({distinct / len(variants):.0%} of the roster): "
                f"handouts in {out / 'handouts'}, answer keys in {out / 'keys'}", 8000))
    return EXIT_OK


def _autograder(args: argparse.Namespace) -> int:
    from trainwall.challenges.autograder import write_bundle
    from trainwall.core.outputs import clean

    for reference in args.mission:
        _nonempty(reference, "MISSION")
    if args.platform == "prairielearn":
        return _prairielearn(args)
    if args.image is not None:
        raise _usage("--image is for the prairielearn platform (Gradescope installs trainwall with setup.sh)")
    out = write_bundle(args.mission, args.out, args.install, _points(args.points), args.visibility or "visible")
    config = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    installs = args.install or "the trainwall wheel in the bundle"
    print(clean(f"Gradescope bundle in {out} for {', '.join(config['missions'])} "
                f"({sum(config['points'].values()):g} points): zip its contents (the files, not the folder). "
                f"setup.sh installs {installs}", 8000))
    return EXIT_OK


def _prairielearn(args: argparse.Namespace) -> int:
    from trainwall.challenges.prairielearn import write_prairielearn
    from trainwall.core.outputs import clean

    if args.visibility is not None:
        raise _usage("--visibility is Gradescope's: on PrairieLearn the assessment's access rules decide it")
    if args.image is None:
        raise _usage("autograder prairielearn needs --image NAME: the Docker image its questions are graded in "
                     "(build and push it from the bundle's image/ folder)")
    out = write_prairielearn(args.mission, args.out, args.image, args.install, _points(args.points))
    questions = sorted(p.name for p in (out / "questions").iterdir())
    print(clean(f"PrairieLearn bundle in {out}: questions {', '.join(questions)}. Next: docker build -t "
                f"{args.image} {out / 'image'} && docker push {args.image}; copy questions/* into your course's "
                f"questions/ and add assessment.json's zone to an infoAssessment.json", 8000))
    return EXIT_OK


def _points(given: list[str]) -> dict[str, float]:
    """``--points MISSION=P`` values."""
    import math

    points = {}
    for item in given:
        mission_id, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not mission_id or not math.isfinite(number) or number < 0:
            raise _usage(f"--points {item!r}: write MISSION=P with P a number of points, 0 or more (cloud/1=10)")
        points[mission_id] = number
    return points


def _plot(args: argparse.Namespace) -> int:
    from trainwall import figures, plotting
    from trainwall.core.outputs import check_target, clean

    plotting.output_format(args.output)          # a wrong extension or path fails before any work
    check_target(args.output, "-o", folder=False, files=[args.subject])
    if args.compare and args.figure != "waterfall":
        raise _usage(f"--compare draws optimizers side by side on the waterfall, not on {args.figure}")
    mission, subjects = figures.subjects(args.subject, args.mission)
    _not_for_a_handout(mission, args.instructor, "this figure draws")
    name = os.path.basename(args.subject) if os.path.isfile(args.subject) else args.subject
    if args.figure == "waterfall":
        if args.compare:
            label, config = subjects[0]
            plotting.draw_waterfalls(figures.optimizer_grid(config), args.output,
                                     f"Training memory by optimizer and precision: {label}")
        else:
            plotting.draw_waterfalls([figures.waterfall(c, label) for label, c in subjects], args.output,
                                     f"Training memory waterfall: {name}")
    elif args.figure == "scaling":
        plotting.draw_scaling([figures.scaling(c, label) for label, c in subjects], args.output,
                              f"Scaling: {name}", mission.objective.target if mission else None)
    elif args.figure == "train":
        from trainwall.core.errors import InputError

        series = [figures.scaling(c, label) for label, c in subjects]
        if not series[0].days:
            raise InputError("workload.model", subjects[0][1].workload.model or "inline architecture",
                             "a workload with a budget (models/data/catalog.toml: budget, in tokens or samples): "
                             "time to train needs what the model trains to")
        plotting.draw_train(series, args.output, f"Time and money to train: {name}")
    else:
        lever = mission.objective.quantity if mission is not None and mission.part == 2 else None
        wait = mission.max_data_wait if mission is not None else 0.0
        plotting.draw_pipeline([figures.pipeline(c, label, lever, wait) for label, c in subjects], args.output,
                               f"Input pipeline: {name}")
    print(f"wrote {clean(args.output, 8000)}")
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from trainwall import explain, figures, plotting
    from trainwall.core.outputs import check_target, clean

    if args.output is not None:                  # a wrong extension or path fails before any work
        plotting.output_format(args.output)
        check_target(args.output, "-o", folder=False, files=[args.subject])
    mission, subjects = figures.subjects(args.subject, args.mission)
    _not_for_a_handout(mission, args.instructor, "the Math Peek explains")
    label, config = subjects[-1]
    peek = explain.math_peek(config, label)
    print(explain.as_text(peek))
    if args.output:
        explain.draw(peek, args.output)
        print(f"wrote {clean(args.output, 8000)}")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    """The JSON Schema generated from the pydantic models the validator uses."""
    if args.kind == "config":
        from trainwall.core.config import Config as model
    elif args.kind == "submission":
        from trainwall.challenges.submission import Submission as model
    else:
        from trainwall.challenges.mission import Mission as model
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
    print(json.dumps(schema, indent=2, sort_keys=True))
    return EXIT_OK


def _say(message: object) -> None:
    """One line on stderr: whatever came from outside (file names, values) cleaned, so it stays one line."""
    from trainwall.core.outputs import clean

    print(f"trainwall: {clean(message, 8000)}", file=sys.stderr)


def _nonempty(value: str | None, option: str) -> None:
    if value is not None and not value.strip():
        raise _usage(f"{option} must name a path, not an empty string ('' is not the current folder)")


def _mission_inputs(mission: str | None) -> list:
    """The paths --mission names (its file, or its answer-key folder), which no output may touch."""
    from pathlib import Path

    if mission is None or not os.path.lexists(mission):
        return []
    if os.path.isdir(mission):      # os.path: Path.is_dir raises on a name too long (Python 3.11)
        return [Path(mission) / "keys" if os.path.isdir(Path(mission) / "keys") else Path(mission)]
    return [Path(mission)]


def _grade_target(args: argparse.Namespace) -> str | None:
    """Where one submission's results go, checked before any grading (exit 2 when it cannot be:
    a folder, a path through a file, the submission itself or the --mission input)."""

    from trainwall.challenges.results import PLATFORM_PATHS
    from trainwall.core.outputs import check_target

    target = args.output
    if args.platform_path:
        if args.format not in PLATFORM_PATHS:
            raise _usage(f"--platform-path needs --format gradescope or prairielearn, not {args.format}")
        target = PLATFORM_PATHS[args.format]
    if target is not None:
        inputs = _mission_inputs(args.mission)
        check_target(target, "--output", folder=False, files=[args.submission, *inputs],
                     folders=[p for p in inputs if os.path.isdir(p)])
    return target


def _grade(args: argparse.Namespace) -> int:
    """One submission: always a results file (exit 0 graded, 2 malformed, 1 grader failure, 3 under
    --fail-under); a folder: one results file per student plus summary.csv and scores.png."""
    from pathlib import Path

    from trainwall.challenges import grading
    from trainwall.challenges.results import render
    from trainwall.core.errors import TrainwallError
    from trainwall.core.outputs import atomic_write

    _nonempty(args.submission, "SUBMISSION")
    _nonempty(args.mission, "--mission")
    _nonempty(args.output, "--output")
    _nonempty(args.identity, "--identity")
    _nonempty(args.roster, "--roster")
    if os.path.isdir(args.submission):
        if args.identity:
            raise _usage("--identity names who submitted one file: grade the file, not a folder")
        return _grade_folder(args)
    if args.roster:
        raise _usage("--roster makes a class's gradebook.csv: grade a folder, not one file")
    if args.shard:
        raise _usage("--shard K/N grades a slice of a class folder: grade a folder, not one file")
    if args.backend != "local" or args.ray_address:
        raise _usage("--backend and --ray-address spread a class folder's grading: grade a folder, not one file")
    target = _grade_target(args)
    setup_error = None
    try:
        identities = grading.platform_identities(args.identity) if args.identity else None
        source = grading.MissionSource.open(args.mission, identities)
        grade = grading.grade_file(args.submission, source)
    except TrainwallError as exc:   # the instructor's --mission: still a results file, exit 2
        setup_error = str(exc)
        grade = grading.Grade(args.submission, None, None, False, 0.0, 1.0, internal_error=f"grader setup: {exc}")
    written = render(grade, args.format)
    if target:
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, written)
        except OSError as exc:
            _say(f"cannot write {target}: {exc.strerror}")
            return EXIT_INTERNAL
        _say(f"{grade.score:g} / {grade.max_score:g} -> {target}")
    else:
        sys.stdout.write(written)
    if setup_error:
        _say(setup_error)
        return EXIT_BAD_INPUT
    if grade.internal_error:
        _say(f"internal error: {grade.internal_error}")
        return EXIT_INTERNAL
    if not grade.gradable:
        _say(grade.format_errors[0])
        return EXIT_BAD_INPUT
    if args.fail_under is not None and grade.score < args.fail_under:
        return EXIT_INFEASIBLE
    return EXIT_OK


def _grade_folder(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwall.challenges import grading
    from trainwall.challenges.classroom import check_output, grade_folder
    from trainwall.challenges.variants import read_roster_table
    from trainwall.core.outputs import clean

    if not args.output:
        raise _usage("grading a folder writes one results file per student: give --output DIR")
    inputs = _mission_inputs(args.mission) + ([args.roster] if args.roster else [])
    check_output(Path(args.submission), Path(args.output), inputs)     # before the --mission is solved
    roster = read_roster_table(args.roster) if args.roster else None
    result = grade_folder(args.submission, grading.MissionSource.open(args.mission), args.format, args.output,
                          args.jobs, inputs=inputs, roster=roster, shard=args.shard, backend=args.backend,
                          address=_ray_address(args))
    if result is None:
        k, n = args.shard
        print(clean(f"shard {k}/{n} of {args.submission} graded into {args.output}: results and records only; "
                    f"when every shard is done, trainwall merge SHARD... --submissions {args.submission} "
                    f"--output DIR writes the class outputs", 8000))
        return EXIT_OK
    return _class_report(result, Path(args.submission), roster, args.assignment)


def _merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwall.challenges import grading
    from trainwall.challenges.classroom import merge_shards
    from trainwall.challenges.variants import read_roster_table

    for shard in args.shards:
        _nonempty(shard, "SHARD")
        if not os.path.isdir(shard):
            raise _usage(f"{shard!r} is not a folder: give the shards' --output folders")
    if args.submissions is None:
        return _merge_generated(args)
    inputs = _mission_inputs(args.mission) + ([args.roster] if args.roster else [])
    roster = read_roster_table(args.roster) if args.roster else None
    result = merge_shards([Path(s) for s in args.shards], args.submissions, grading.MissionSource.open(args.mission),
                          args.format, args.output, inputs, roster)
    return _class_report(result, Path(args.submissions), roster, args.assignment)


def _merge_generated(args: argparse.Namespace) -> int:
    """``generate --shard`` outputs joined into one set of handouts and keys."""
    from pathlib import Path

    from trainwall.challenges.variants import merge_shards
    from trainwall.core.outputs import clean

    for shard in args.shards:
        if not os.path.isdir(os.path.join(shard, "keys")):
            raise _usage(f"{shard!r} holds no keys/ of trainwall generate: merging graded shards needs --submissions")
    out = merge_shards([Path(s) for s in args.shards], args.output)
    print(clean(f"merged {len(args.shards)} shards: handouts in {out / 'handouts'}, answer keys in {out / 'keys'}", 8000))
    return EXIT_OK


def _class_report(result, folder, roster, assignment: str) -> int:
    """A class's gradebook (with a roster), charts and one-line summary; the exit code."""
    from trainwall.challenges.classroom import gradebook_lines
    from trainwall.core.outputs import atomic_write_chunks, clean
    from trainwall.plotting import draw_check_rates, draw_score_histogram

    totals = result.totals
    if roster is not None:
        atomic_write_chunks(result.results_dir / "gradebook.csv", gradebook_lines(*roster, totals.best, assignment))
    histogram = result.results_dir / "scores.png"
    title = clean(folder.name, 80)
    draw_score_histogram(totals.scores, totals.submissions, totals.top or 1.0, histogram, title)
    draw_check_rates(*totals.rates.result(), result.results_dir / "checks.png", title)
    gradable = len(totals.scores)
    mean = sum(totals.scores) / gradable if gradable else 0.0
    everyone = totals.score_sum / totals.submissions if totals.submissions else 0.0
    kept = f"; {result.kept} current from an earlier run kept" if result.kept else ""
    print(clean(f"graded {totals.submissions} submissions ({totals.submissions - gradable} not gradable, "
                f"{len(result.skipped)} entries skipped: see summary.csv{kept}), mean score {mean:.3g} over the "
                f"gradable ones, {everyone:.3g} over all (a not-gradable file scores 0); results in "
                f"{result.results_dir}, summary {result.summary_csv}, histogram {histogram}, Lock and wall rates "
                f"{result.results_dir / 'checks.png'}", 8000))
    return EXIT_INTERNAL if result.internal_failures else EXIT_OK


def _shard(text: str) -> tuple[int, int]:
    """K/N with 1 <= K <= N."""
    k, slash, n = text.partition("/")
    if not slash or not (k.isascii() and k.isdigit() and n.isascii() and n.isdigit()) or not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N with 1 <= K <= N (e.g. 2/8)")
    return int(k), int(n)


def _usage(message: str):
    from trainwall.core.errors import InputError

    return InputError("", "", message)


def _seed(text: str) -> int:
    """A seed answer keys can record (the hardened reader refuses integers beyond 64 bits)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text} is outside 0 to 2^63 - 1")
    return value


def _show(args: argparse.Namespace) -> int:
    from trainwall.challenges.mission import resolve
    from trainwall.challenges.brief import mission_brief, mission_brief_dict

    _nonempty(args.mission, "MISSION")
    chosen = resolve(args.mission)
    print(json.dumps(mission_brief_dict(chosen), indent=2, sort_keys=True) if args.json else mission_brief(chosen))
    return EXIT_OK


def _start(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainwall.challenges.mission import resolve
    from trainwall.challenges.variants import submission_template
    from trainwall.core.errors import InputError
    from trainwall.core.outputs import atomic_write, clean

    _nonempty(args.mission, "MISSION")
    _nonempty(args.output, "--output")
    chosen = resolve(args.mission)
    target = Path(args.output)
    if os.path.lexists(target) and not (args.force and os.path.isfile(target) and not os.path.islink(target)):
        raise InputError("--output", str(target), "already exists: choose another file, or give --force to "
                         "replace a file")
    atomic_write(target, submission_template(chosen, chosen.reference, args.student, current=True))
    print(f"wrote {clean(str(target), 1000)}: {chosen.reference}'s current plan; change it, then "
          f"trainwall evaluate / grade it")
    return EXIT_OK


def _missions(args: argparse.Namespace) -> int:
    from trainwall.challenges.mission import PARTS, mission, shipped_ids

    rows = []
    for mid in shipped_ids():
        m = mission(mid).rendered()
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


def _not_for_a_handout(mission, instructor: bool, what: str) -> None:
    """A student's handout does not hand out its answer: solve, and the optimum a figure or the
    Math Peek would show, need --instructor (docs/THREAT_MODEL.md: not advertising the answer)."""
    if mission is not None and mission.handout and not instructor:
        from trainwall.core.errors import InputError

        raise InputError("handout", mission.reference, f"this is a student's handout: {what} its certified "
                         f"optimum, which is the answer; evaluate your own plan instead (trainwall evaluate "
                         f"submission.toml --mission mission.toml), or add --instructor if you grade it")


def _solve(args: argparse.Namespace) -> int:
    from trainwall.challenges.mission import resolve
    from trainwall.challenges.solve import solve
    from trainwall.optimizer.highs import Status

    chosen = resolve(args.mission)
    _not_for_a_handout(chosen, args.instructor, "solve prints")
    result = solve(chosen)
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
    from trainwall.core.outputs import clean
    from trainwall.report import text_report

    config, metrics = evaluate_file(args.config, args.mission)
    if args.json:
        print(json.dumps(metrics.to_dict(), indent=2, sort_keys=True, allow_nan=False, default=float))
    else:
        print(text_report(config, metrics, clean(args.config, 1000)))   # a file name stays one line
    return EXIT_OK if metrics.feasible else EXIT_INFEASIBLE


def _closed_pipe() -> int:
    """Stop quietly when the reader has gone: point stdout at /dev/null so the interpreter's
    final flush does not fail again, and exit as ``cat`` or ``yes`` would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):   # no real stdout (in-process callers): nothing to redirect
        pass
    return EXIT_CLOSED_PIPE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from trainwall.core.errors import TrainwallError

    try:
        code = {"evaluate": _evaluate, "missions": _missions, "show": _show, "start": _start, "solve": _solve, "grade": _grade,
                "generate": _generate, "schema": _schema,
                "autograder": _autograder, "regrade": _regrade, "merge": _merge, "lab": _lab, "plot": _plot, "explain": _explain}[args.command](args)
        sys.stdout.flush()          # a closed pipe shows here, inside the handler, not at exit
        return code
    except TrainwallError as exc:
        _say(exc)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, traceback on request
        if os.environ.get("TRAINWALL_DEBUG"):
            raise
        _say(f"internal error: {type(exc).__name__}: {exc} (set TRAINWALL_DEBUG=1 for a traceback)")
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
