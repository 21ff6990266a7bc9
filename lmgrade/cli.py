"""The `lmgrade` command.

    lmgrade grade [--impl student|reference | --adapters PATH | --submission DIR]
                  [--gradescope results.json] [--junit junit.xml] [--report report.md]
    lmgrade grade-all DIR --jobs N --csv gradebook.csv
    lmgrade release OUT_DIR        the student handout
    lmgrade bundle OUT.zip         a Gradescope autograder bundle
    lmgrade selfcheck              the grader grades itself
    lmgrade train [--impl reference|student] [--steps N] [--out DIR]   train a tiny LM, plot, sample
    lmgrade perplexity [--tokens PATH] [--stride N ...] [--steps N] [--out DIR]   sliding-window perplexity of a tiny GPT-2

Exit status: 0 when grading ran (whatever the score), 2 when the grader itself failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmgrade.grading.grade import Grade, GradingFailed, Selection, grade, grade_notes
from lmgrade.outputs.report import gradescope_results, junit_xml, markdown_report, scorecard_text
from lmgrade.perplexity_demo import add_arguments as add_perplexity_arguments
from lmgrade.train_demo import add_arguments as add_train_arguments


def _add_selection(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--impl", choices=["student", "reference"], default=None, help="a bundled implementation (default: student)")
    which.add_argument("--adapters", metavar="PATH", help="a Python file defining the run_* adapter functions")
    which.add_argument("--submission", metavar="DIR", help="a folder holding a student/ package")


def _add_grading_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="grading", help="Hypothesis profile: grading (default), fast or thorough")
    parser.add_argument("--rubric", default="default", metavar="NAME|PATH",
                        help="default (this assignment), cs336 (what CS336 assignment 1 asks), or a rubric .toml")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="per-test time limit (default 120)")
    parser.add_argument("--no-isolation", dest="isolate", action="store_false",
                        help="run the submission inside the test process (faster; only for trusted code)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="time for the whole grading of one submission (default: the rubric's time_budget_seconds)")
    parser.add_argument("--no-sandbox", dest="sandbox", action="store_const", const="none", default=None,
                        help="run untrusted code even where no sandbox tier can be made (only for code you trust)")


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(impl=args.impl or "student", adapters=args.adapters, submission=args.submission)


def write_outputs(result: Grade, args: argparse.Namespace, title: str) -> None:
    if args.gradescope:
        Path(args.gradescope).parent.mkdir(parents=True, exist_ok=True)
        Path(args.gradescope).write_text(json.dumps(
            gradescope_results(result.scores, result.seconds, output=grade_notes(result)), indent=2))
    if args.junit:
        Path(args.junit).parent.mkdir(parents=True, exist_ok=True)
        Path(args.junit).write_text(junit_xml(result.scores))
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(markdown_report(result.scores, title, notes=grade_notes(result).splitlines()))


def cmd_grade(args: argparse.Namespace) -> int:
    selection = _selection(args)
    result = grade(selection, profile=args.profile, per_test_timeout=args.timeout, isolate=args.isolate, rubric=args.rubric,
                   time_budget=args.time_budget, sandbox_request=args.sandbox)
    print(scorecard_text(result.scores, result.rubric.total))
    print(grade_notes(result))
    if result.rubric.not_counted:
        print(f"not part of the {result.rubric.name} rubric: " + "; ".join(result.rubric.not_counted))
    print(f"graded {selection.describe()} in {result.seconds:.1f} s")
    write_outputs(result, args, f"Grade of {selection.describe()}")
    return 0


def cmd_grade_all(args: argparse.Namespace) -> int:
    from lmgrade.grading.gradebook import grade_all

    grade_all(Path(args.directory), Path(args.csv), jobs=args.jobs, profile=args.profile, per_test_timeout=args.timeout,
              isolate=args.isolate, time_budget=args.time_budget, sandbox_request=args.sandbox)
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from lmgrade.outputs.handout import build_handout

    build_handout(Path(args.out_dir))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from lmgrade.outputs.bundle import build_bundle

    build_bundle(Path(args.out_zip), rubric=args.rubric)
    return 0


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from lmgrade.grading.selfcheck import main as selfcheck_main

    return selfcheck_main(jobs=args.jobs, all_built_on=args.all_built_on)


def cmd_train(args: argparse.Namespace) -> int:
    from lmgrade.train_demo import run_command

    return run_command(args)


def cmd_perplexity(args: argparse.Namespace) -> int:
    from lmgrade.perplexity_demo import run_command

    return run_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmgrade", description="Grade the Transformer-LM assignment.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("grade", help="grade one submission")
    _add_selection(p)
    _add_grading_options(p)
    p.add_argument("--gradescope", metavar="PATH", help="write Gradescope results.json here")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML (points as properties) here")
    p.add_argument("--report", metavar="PATH", help="write a Markdown report here")
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("grade-all", help="grade every submission folder in DIR into one CSV gradebook")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--csv", required=True, metavar="PATH")
    _add_grading_options(p)
    p.set_defaults(run=cmd_grade_all)

    p = sub.add_parser("release", help="build the student handout")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.set_defaults(run=cmd_release)

    p = sub.add_parser("bundle", help="build a Gradescope autograder zip")
    p.add_argument("--rubric", default="default", metavar="NAME", help="the rubric run_autograder grades with: default or cs336")
    p.add_argument("out_zip", metavar="OUT.zip")
    p.set_defaults(run=cmd_bundle)

    p = sub.add_parser("selfcheck", help="prove the grader: reference, stubs, bug catalogue, alternatives")
    p.add_argument("--jobs", type=int, default=None, help="parallel workers (default: number of cores)")
    p.add_argument("--all-built-on", action="store_true",
                   help="run every bug on every item built on its component (the nightly run); "
                        "default: the bugs of a component share those items, each item run by at least one")
    p.set_defaults(run=cmd_selfcheck)

    p = sub.add_parser("train", help="train a tiny Transformer LM on the bundled stories, plot its loss, sample from it")
    add_train_arguments(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("perplexity", help="train a tiny GPT-2 on the bundled stories, then its sliding-window perplexity at several strides")
    add_perplexity_arguments(p)
    p.set_defaults(run=cmd_perplexity)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except GradingFailed as error:
        print(f"lmgrade: grading could not run: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:  # the student handout ships only what grading needs
        print(f"lmgrade {args.command}: not available here ({error.name} is instructor-only)", file=sys.stderr)
        return 2
    except RuntimeError as error:  # e.g. ReleaseError: a check of the handout failed
        print(f"lmgrade {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
