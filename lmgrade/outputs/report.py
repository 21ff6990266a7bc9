"""Output formats of a grade: terminal scorecard, Gradescope results.json, JUnit XML, Markdown."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from lmgrade.core.scoring import ItemScore


def _first_line(text: str, width: int = 90) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def total_of(scores: Sequence[ItemScore]) -> tuple[float, float]:
    return sum(s.score for s in scores), sum(s.max_score for s in scores)


def scorecard_text(scores: Sequence[ItemScore], total: float | None = None) -> str:
    earned, possible = total_of(scores)
    width = max([len(s.item.id) for s in scores] + [4])
    lines = ["=" * 30 + " lmgrade scorecard " + "=" * 30]
    for s in scores:
        points = f"{s.score:5.2f} / {s.max_score:g}"
        hidden = "" if s.item.visible else " (hidden)"
        line = f"{s.item.id:<{width}}  {points:>12}  {s.status}{hidden}"
        if s.reason:
            line += f" — {_first_line(s.reason)}"
        lines.append(line)
    label = "TOTAL" if total is not None else "TOTAL (items that ran)"
    lines.append(f"{label:<{width}}  {earned:5.2f} / {total if total is not None else possible:g}")
    return "\n".join(lines)


def gradescope_results(scores: Sequence[ItemScore], execution_time: float | None = None, output: str = "") -> dict:
    """Gradescope's autograder results.json: one test entry per rubric item."""
    tests = []
    for number, s in enumerate(scores, start=1):
        tests.append({
            "name": f"{s.item.id}: {s.item.title}",
            "number": str(number),
            "score": round(s.score, 4),
            "max_score": s.max_score,
            "status": "passed" if s.score >= s.max_score else "failed",
            "output": f"{s.status}" + (f"\n{s.reason}" if s.reason else ""),
            "visibility": "visible" if s.item.visible else "after_published",
        })
    earned, _ = total_of(scores)
    results = {"score": round(earned, 4), "output": output, "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}
    if execution_time is not None:
        results["execution_time"] = round(execution_time, 1)
    return results


def junit_xml(scores: Sequence[ItemScore]) -> str:
    """One <testcase> per item, with its points as properties."""
    earned, possible = total_of(scores)
    failures = sum(1 for s in scores if s.score < s.max_score)
    suite = ET.Element("testsuite", name="lmgrade", tests=str(len(scores)), failures=str(failures))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="score", value=f"{earned:g}")
    ET.SubElement(props, "property", name="max_score", value=f"{possible:g}")
    for s in scores:
        case = ET.SubElement(suite, "testcase", classname="lmgrade", name=s.item.id)
        case_props = ET.SubElement(case, "properties")
        ET.SubElement(case_props, "property", name="points", value=f"{s.score:g}")
        ET.SubElement(case_props, "property", name="max_points", value=f"{s.max_score:g}")
        ET.SubElement(case_props, "property", name="visible", value=str(s.item.visible).lower())
        if s.status == "not graded here":
            ET.SubElement(case, "skipped", message=_first_line(s.reason))
        elif s.score < s.max_score:
            failure = ET.SubElement(case, "failure", message=f"{s.status}: {_first_line(s.reason)}")
            failure.text = s.reason
    return ET.tostring(suite, encoding="unicode")


def markdown_report(scores: Sequence[ItemScore], title: str, notes: Sequence[str] = ()) -> str:
    """notes: lines shown under the score (which sandbox tier ran the code, what ran out of time)."""
    earned, possible = total_of(scores)
    lines = [f"# {title}", "", f"**Score: {earned:.2f} / {possible:g}**", ""]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    lines += ["| item | points | status |", "| --- | ---: | --- |"]
    for s in scores:
        lines.append(f"| {s.item.id}{'' if s.item.visible else ' (hidden)'} | {s.score:.2f} / {s.max_score:g} | {s.status} |")
    details = [s for s in scores if s.reason]
    if details:
        lines += ["", "## What to look at", ""]
        for s in details:
            lines += [f"### {s.item.id}: {s.item.title}", "", "```", s.reason.strip(), "```", ""]
    return "\n".join(lines) + "\n"


def charged_where(bug_checks: list, items: list[str]) -> str:
    """The self-check's table, bug × item: ✓ the item lost points, · it kept them, blank: not run; and
    whether the bug was diagnosed as itself. bug_checks: objects with .name, .lost {item: bool}, .diagnosed."""
    columns = [i for i in items if any(i in c.lost for c in bug_checks)]
    width = max((len(c.name) for c in bug_checks), default=3)
    header_rows = max((len(i) for i in columns), default=0)
    lines = []
    # Column headers written vertically, so the matrix stays narrow.
    for row in range(header_rows):
        cells = [(i.rjust(header_rows)[row]) for i in columns]
        lines.append(" " * width + " │ " + " ".join(cells) + (" │ diagnosed" if row == header_rows - 1 else " │"))
    lines.append("─" * width + "─┼─" + "─" * (2 * len(columns) - 1) + "─┼─" + "─" * 9)
    for c in bug_checks:
        cells = ["✓" if c.lost.get(i) else ("·" if i in c.lost else " ") for i in columns]
        lines.append(c.name.ljust(width) + " │ " + " ".join(cells) + " │ " + ("✓" if c.diagnosed else "✗"))
    return "\n".join(lines)
