"""The `lmgrade` command.

    lmgrade grade [--impl student|reference | --adapters PATH | --submission DIR]
                  [--gradescope results.json] [--junit junit.xml] [--report report.md|report.html]
    lmgrade grade-all DIR --jobs N --csv gradebook.csv
    lmgrade release OUT_DIR        the student handout
    lmgrade bundle OUT.zip         a Gradescope autograder bundle
    lmgrade selfcheck              the grader grades itself
    lmgrade train [--impl reference|student] [--steps N] [--out DIR]   train a tiny LM, plot, sample
    lmgrade perplexity [--tokens PATH] [--stride N ...] [--steps N] [--out DIR]   sliding-window perplexity of a tiny GPT-2

Exit status: 0 when grading ran (whatever the score), 2 when the grader itself failed or was given
bad input (a missing adapters file or submission folder: one line on stderr says what is missing).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

from lmgrade.core.rubric import load_rubric
from lmgrade.grading.grade import Grade, GradingFailed, Selection, default_workers, grade, grade_notes
from lmgrade.outputs.report import gradescope_results, html_report, junit_xml, markdown_report, scorecard_text
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
        render = html_report if Path(args.report).suffix.lower() in (".html", ".htm") else markdown_report
        Path(args.report).write_text(render(result.scores, title, notes=grade_notes(result).splitlines()))


def _has_run_function(tree: ast.Module) -> bool:
    """Any run_* the file could define (a def, an assignment, an import, a name in a string, under
    an `if` or `try` too): read from the source, never run. Generous: only a file with none is refused."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("run_"):
            return True
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id.startswith("run_"):
            return True
        if isinstance(node, ast.alias) and ((node.asname or node.name.rsplit(".", 1)[-1]).startswith("run_") or node.name == "*"):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("run_"):
            return True
    return False


def bad_grade_input(args: argparse.Namespace) -> str | None:
    """Why `lmgrade grade` cannot grade what it was given (one line), or None. A submission that is
    there but wrong (does not import, a file with a syntax error) is graded: that is the student's score."""
    if getattr(args, "workers", 1) < 1:
        return f"--workers {args.workers}: needs at least 1 process"
    if args.adapters:
        path = Path(args.adapters)
        if not path.exists():
            return f"--adapters {args.adapters}: no such file"
        if path.is_dir():
            return f"--adapters {args.adapters}: a folder, not a Python (.py) file"
        if not path.is_file() or path.suffix != ".py":
            return f"--adapters {args.adapters}: not a Python (.py) file"
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError:
            return None  # the submission's own mistake: graded, and each item says so
        except (OSError, ValueError) as error:
            return f"--adapters {args.adapters}: cannot be read ({error})"
        if not _has_run_function(tree):
            return f"--adapters {args.adapters}: defines no run_* adapter function (e.g. def run_linear(...))"
    if args.submission:
        folder = Path(args.submission)
        try:
            if not folder.exists():
                return f"--submission {args.submission}: no such folder"
            if not folder.is_dir():
                return f"--submission {args.submission}: not a folder"
            if not any(folder.iterdir()):
                return f"--submission {args.submission}: the folder is empty"
            if not (folder / "student" / "__init__.py").is_file():
                return f"--submission {args.submission}: no student/__init__.py in it (a folder holding the student/ package)"
        except OSError as error:
            return f"--submission {args.submission}: cannot be read ({error})"
    try:
        load_rubric(args.rubric)
    except (OSError, ValueError, KeyError) as error:  # missing, not TOML, or not a rubric (RubricError)
        return f"--rubric {args.rubric}: {type(error).__name__}: {error}".replace("\n", " ")
    return None


def cmd_grade(args: argparse.Namespace) -> int:
    why = bad_grade_input(args)
    if why:
        print(f"lmgrade grade: {why}", file=sys.stderr)
        return 2
    selection = _selection(args)
    result = grade(selection, profile=args.profile, per_test_timeout=args.timeout, isolate=args.isolate, rubric=args.rubric,
                   time_budget=args.time_budget, sandbox_request=args.sandbox, workers=args.workers)
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

    build_handout(Path(args.out_dir), bugs=[] if args.without_measurements else None)
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
    p.add_argument("--report", metavar="PATH",
                   help="write a report here: Markdown, or a self-contained HTML page (pictures embedded) if PATH ends in .html")
    p.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                   help="pytest processes sharing the tests, each with its own sandboxed child "
                        "(default: 2 where there are 2 cores or more; the score does not depend on it)")
    p.set_defaults(run=cmd_grade)

    p = sub.add_parser("grade-all", help="grade every submission folder in DIR into one CSV gradebook")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--csv", required=True, metavar="PATH")
    _add_grading_options(p)
    p.set_defaults(run=cmd_grade_all)

    p = sub.add_parser("release", help="build the student handout")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--without-measurements", action="store_true",
                   help="skip running each catalogued bug on its visible tests (about 12 minutes on 2 cores): the "
                        "handout then names the bugs of output comparisons only, not those found by a measurement "
                        "(generated tokens, FLOPs, training)")
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
