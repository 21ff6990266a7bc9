"""The handout's files: copies without caches, and the files written for students
(the visible rubric, pyproject.toml, README.md)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from string import Template

from lmgrade.core.rubric import RUBRIC_PATH, load_rubric

PROJECT_ROOT = Path(__file__).resolve().parents[3]
README_TEMPLATE = Path(__file__).resolve().parent / "README_template.md"
# Never copied anywhere into the handout (caches, build output, local state).
JUNK = ("__pycache__", "*.pyc", "*.pyo", ".hypothesis", ".pytest_cache", "*.egg-info", ".DS_Store")


class ReleaseError(RuntimeError):
    """The handout could not be built, or it would leak something."""


def _ignore_for(src_root: Path, leave_out: set[str]):
    patterns = shutil.ignore_patterns(*JUNK)
    src_root = src_root.resolve()

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(patterns(directory, names))
        here = Path(directory).resolve().relative_to(src_root)
        ignored |= {name for name in names if (here / name).as_posix() in leave_out}
        return ignored

    return ignore


def copy_tree(src: Path, dst: Path, leave_out: set[str] = frozenset()) -> None:
    """Copy src to dst without caches; `leave_out` holds paths relative to src ("a/b.py") to skip."""
    shutil.copytree(src, dst, ignore=_ignore_for(Path(src), set(leave_out)))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _whole(x: float) -> float | int:
    return int(x) if x == int(x) else x


def visible_rubric_toml(rubric_path: Path = RUBRIC_PATH) -> tuple[str, float]:
    """The rubric restricted to its visible items, with total = their sum; and that total."""
    data = tomllib.loads(Path(rubric_path).read_text())
    items = [raw for raw in data["items"] if raw.get("visible", True)]
    visible_ids = {raw["id"] for raw in items}
    total = sum(float(raw["points"]) for raw in items)
    lines = [
        "# The rubric of the visible tests: every item, its points, and the tests that decide it.",
        "#",
        "# - `tests`: path prefixes of pytest node ids (files, or file::test_name).",
        "# - Partial credit: an item's points are shared equally among its test functions; a test",
        "#   function earns its share only if every one of its cases (parametrizations, Hypothesis",
        "#   examples) passes. Cases skipped here (e.g. CUDA on a machine without a GPU) are left",
        "#   out of that count; an item whose every test is skipped scores 0 and says why.",
        "# - The hidden items (graded by your instructor, not listed here) use the same rules.",
        "",
        f"total = {_toml_value(total if total != int(total) else int(total))}",
        "# The points of the hidden items: pytest's last line says how many exist beyond the visible ones.",
        f"hidden_points = {_toml_value(_whole(sum(float(raw['points']) for raw in data['items'] if not raw.get('visible', True))))}",
    ]
    for raw in items:
        lines += ["", "[[items]]"]
        for key, value in raw.items():
            if key == "builds_on":
                value = [r for r in value if r in visible_ids]
                if not value:
                    continue
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n", total


def student_pyproject(project_root: Path = PROJECT_ROOT) -> str:
    """pyproject.toml of the handout: the same dependencies, only the packages that ship."""
    data = tomllib.loads((project_root / "pyproject.toml").read_text())
    project = data["project"]
    include = data.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get(
        "include", ["student*", "adapters*", "lmgrade*"])
    include = [p for p in include if not p.startswith(("reference", "interop"))]
    scripts = project.get("scripts", {"lmgrade": "lmgrade.cli:main"})
    lines = [
        "[build-system]",
        'requires = ["setuptools>=68"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {_toml_value(project['name'] + '-assignment')}",
        f"version = {_toml_value(project.get('version', '0.1.0'))}",
        'description = "Build a Transformer language model from scratch: your implementation and its visible tests"',
        'readme = "README.md"',
        f"requires-python = {_toml_value(project.get('requires-python', '>=3.10'))}",
        "dependencies = [",
        *[f"    {_toml_value(dep)}," for dep in project["dependencies"]],
        "]",
        "",
        "[project.scripts]",
        *[f"{name} = {_toml_value(target)}" for name, target in scripts.items()],
        "",
        "[tool.setuptools.packages.find]",
        f"include = {_toml_value(include)}",
        "",
        "[tool.setuptools.package-data]",
        'lmgrade = ["core/rubric.toml", "sandbox/policy.toml", "train_corpus.txt"]',
        "",
        "[tool.pytest.ini_options]",
        'testpaths = ["tests"]',
        'addopts = "-p no:cacheprovider"',
    ]
    return "\n".join(lines) + "\n"


def student_readme(visible_total: float, rubric_path: Path = RUBRIC_PATH) -> str:
    rubric = load_rubric(rubric_path)
    visible = [i for i in rubric.items if i.visible]
    hidden = [i for i in rubric.items if not i.visible]
    table = "\n".join(f"| `{i.id}` | {i.title} | {i.points:g} | `{', '.join(i.tests)}` |" for i in visible)
    hidden_list = "\n".join(f"- {i.title} ({i.points:g} point{'' if i.points == 1 else 's'})" for i in hidden)
    return Template(README_TEMPLATE.read_text()).substitute(
        visible_total=f"{visible_total:g}",
        course_total=f"{rubric.total:g}",
        hidden_total=f"{sum(i.points for i in hidden):g}",
        items_table=table,
        hidden_items=hidden_list,
    )
