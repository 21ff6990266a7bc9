"""Output formats of a grade: terminal scorecard, Gradescope results.json, JUnit XML, Markdown, HTML.

Each honours the items' `feedback` level (lmgrade.core.rubric.FEEDBACK_LEVELS): a "score_only"
item shows its points and "details hidden", never its message or pictures.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from lmgrade.core.hints import hint_for
from lmgrade.core.scoring import FAILED, ItemScore
from lmgrade.outputs import pictures

DETAILS_HIDDEN = "details hidden"
# Gradescope's test-level `visibility` for each feedback level (score_only: the score is shown,
# the output is replaced by DETAILS_HIDDEN).
GRADESCOPE_VISIBILITY = {"visible": "visible", "score_only": "visible",
                         "after_due_date": "after_due_date", "after_published": "after_published"}
WHEN_SHOWN = {"after_due_date": "shown to students after the due date",
              "after_published": "shown to students once grades are published"}
PICTURES_PER_ITEM = 3


def shown_reason(s: ItemScore) -> str:
    """What a student may read of why the item lost points ("" when it did not), and the item's hint
    (what such a failure usually means, and a question to ask yourself: lmgrade/core/hints.py)."""
    if not s.reason:
        return ""
    if not s.item.details_shown:
        return DETAILS_HIDDEN
    hint = hint_for(s.item.id) if any(r.outcome == FAILED for r in s.records) else None  # a wrong result, not a stub
    return s.reason + (f"\n\nHint: {hint}" if hint else "")


def _tags(s: ItemScore) -> str:
    tags = ([] if s.item.visible else ["hidden"]) + ([s.item.feedback.replace("_", " ")] if s.item.feedback in WHEN_SHOWN else [])
    return f" ({', '.join(tags)})" if tags else ""


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
        line = f"{s.item.id:<{width}}  {points:>12}  {s.status}{_tags(s)}"
        if s.reason:
            line += f" — {_first_line(shown_reason(s))}"
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
            "output": f"{s.status}" + (f"\n{shown_reason(s)}" if s.reason else ""),
            "visibility": GRADESCOPE_VISIBILITY[s.item.feedback],
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
        ET.SubElement(case_props, "property", name="feedback", value=s.item.feedback)
        if s.status == "not graded here":
            ET.SubElement(case, "skipped", message=_first_line(s.reason))
        elif s.score < s.max_score:
            failure = ET.SubElement(case, "failure", message=f"{s.status}: {_first_line(s.reason)}")
            failure.text = s.reason
    return ET.tostring(suite, encoding="unicode")


def item_pictures(s: ItemScore) -> list[tuple[str, bytes]]:
    """(caption, PNG) of where the error is, for an item whose details a student may see: the
    profiles the recorder kept (visible items only), at most PICTURES_PER_ITEM."""
    if not s.item.visible or not s.item.details_shown or s.score >= s.max_score:
        return []
    found = [(r.nodeid.split("::")[-1], p) for r in s.records for p in (r.profiles or [])]
    found = sorted(found, key=lambda found: found[1].get("kind") != "dependence")[:PICTURES_PER_ITEM]  # most telling first
    drawn = []
    for caption, profile in found:
        try:
            drawn.append((caption, pictures.profile_png(profile)))
        except Exception as error:  # a picture that cannot be drawn is left out, the report still comes
            drawn.append((f"{caption}: no picture ({type(error).__name__})", b""))
    return [(caption, png) for caption, png in drawn if png]


def _points_picture(scores: Sequence[ItemScore]) -> bytes:
    return pictures.points_png([(s.item.id, s.score, s.max_score) for s in scores]) if scores else b""


def markdown_report(scores: Sequence[ItemScore], title: str, notes: Sequence[str] = (), with_pictures: bool = True) -> str:
    """notes: lines shown under the score (which sandbox tier ran the code, what ran out of time).
    with_pictures: a bar per item and where each failed comparison's error is, as PNG data URIs."""
    draw = with_pictures and pictures.available()
    earned, possible = total_of(scores)
    lines = [f"# {title}", "", f"**Score: {earned:.2f} / {possible:g}**", ""]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    if draw and scores:
        lines += [f"![points per item]({pictures.data_uri(_points_picture(scores))})", ""]
    lines += ["| item | points | status |", "| --- | ---: | --- |"]
    for s in scores:
        hidden_details = f" ({DETAILS_HIDDEN})" if s.reason and not s.item.details_shown else ""
        lines.append(f"| {s.item.id}{_tags(s)} | {s.score:.2f} / {s.max_score:g} | {s.status}{hidden_details} |")
    details = [s for s in scores if s.reason and s.item.details_shown]
    if details:
        lines += ["", "## What to look at", ""]
        for s in details:
            when = f" ({WHEN_SHOWN[s.item.feedback]})" if s.item.feedback in WHEN_SHOWN else ""
            lines += [f"### {s.item.id}: {s.item.title}{when}", "", "```", shown_reason(s).strip(), "```", ""]
            for caption, png in item_pictures(s) if draw else []:
                lines += [f"![where the error is: {caption}]({pictures.data_uri(png)})", ""]
    return "\n".join(lines) + "\n"


HTML_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
              "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}"
              "td.n{text-align:right}pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap}"
              "figure{margin:.5em 0}figcaption{font-size:.85em;color:#555}")


def html_report(scores: Sequence[ItemScore], title: str, notes: Sequence[str] = ()) -> str:
    """The report as one self-contained HTML page: its pictures are embedded PNGs (data URIs), and
    it refers to nothing outside itself (no scripts, styles, images or links to fetch)."""
    draw = pictures.available()
    e = html.escape
    earned, possible = total_of(scores)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{HTML_STYLE}</style></head><body>", f"<h1>{e(title)}</h1>",
           f"<p><strong>Score: {earned:.2f} / {possible:g}</strong></p>"]
    if notes:
        out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    if draw and scores:
        out.append(f'<figure><img alt="points per item" src="{pictures.data_uri(_points_picture(scores))}">'
                   "<figcaption>points earned (colour) of each item's maximum (grey)</figcaption></figure>")
    out.append("<table><tr><th>item</th><th>points</th><th>status</th></tr>")
    for s in scores:
        hidden_details = f" ({DETAILS_HIDDEN})" if s.reason and not s.item.details_shown else ""
        out.append(f"<tr><td>{e(s.item.id + _tags(s))}</td><td class=\"n\">{s.score:.2f} / {s.max_score:g}</td>"
                   f"<td>{e(s.status + hidden_details)}</td></tr>")
    out.append("</table>")
    details = [s for s in scores if s.reason and s.item.details_shown]
    if details:
        out.append("<h2>What to look at</h2>")
    for s in details:
        when = f" ({WHEN_SHOWN[s.item.feedback]})" if s.item.feedback in WHEN_SHOWN else ""
        out += [f"<h3>{e(s.item.id)}: {e(s.item.title + when)}</h3>", f"<pre>{e(shown_reason(s).strip())}</pre>"]
        for caption, png in item_pictures(s) if draw else []:
            out.append(f'<figure><img alt="where the error is" src="{pictures.data_uri(png)}">'
                       f"<figcaption>where the error is: {e(caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


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
