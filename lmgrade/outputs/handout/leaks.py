"""What must never be published: reference code, pickles, instructor-only files.

The build fails if any handout text file contains a line of reference/*.py (>= MIN_LINE
characters once stripped) that is not also in student/*.py (shared signatures are fine), if
any file is a pickle (or a torch.save archive: data ships as safetensors only), or if an
instructor-only path is present.
"""

from __future__ import annotations

from pathlib import Path

from lmgrade.outputs.handout.files import PROJECT_ROOT, ReleaseError
from lmgrade.outputs.handout.snapshots import BUG_OUTPUTS_RELPATH, SNAPSHOT_RELPATH

# Parts of lmgrade (paths under lmgrade/) that stay with the instructor: they hold, quote or build
# from reference code, or grade a whole class.
INSTRUCTOR_ONLY = frozenset({
    "catalogue/bugs", "catalogue/variants.py", "grading/selfcheck.py", "grading/selfcheck_plugin.py", "grading/gradebook.py",
    "outputs/handout", "outputs/bundle.py", "catalogue/recording.py", "catalogue/record_runs.py",
})
# The rubrics ship rewritten (visible items only) or not at all.
RUBRIC_RELPATH = "core/rubric.toml"
CS336_RUBRIC_RELPATH = "core/rubric_cs336.toml"
MIN_LINE = 25  # a reference line at least this long (stripped) must not appear in the handout
# Lines that occur in the reference and, written independently, in a handout file, and that are
# public API rather than solution: each needs a reason.
ALLOWED_SHARED_LINES = frozenset({
    "kv_cache = model.make_kv_cache()",  # adapters/package.py: the documented way to get a cache (student/model.py)
})

PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin", ".npy", ".npz", ".joblib")


def _lines_of(folder: Path) -> set[str]:
    return {line.strip() for f in sorted(Path(folder).glob("*.py")) for line in f.read_text().splitlines()}


def forbidden_reference_lines(project_root: Path = PROJECT_ROOT) -> set[str]:
    """Lines of reference/*.py (stripped, >= MIN_LINE chars) that are not also lines of student/*.py."""
    reference = {line for line in _lines_of(project_root / "reference") if len(line) >= MIN_LINE}
    return reference - _lines_of(project_root / "student") - ALLOWED_SHARED_LINES


def _text_of(path: Path) -> str | None:
    """A text file's text; a safetensors file's header (names and metadata: the bugs' descriptions)."""
    data = path.read_bytes()
    if path.suffix == ".safetensors" and len(data) >= 8:
        header = data[8:8 + int.from_bytes(data[:8], "little")]
        try:
            import json

            meta = json.loads(header).get("__metadata__", {})
            return header.decode("utf-8") + "\n" + "\n".join(
                line for value in meta.values() for line in _json_strings(value))
        except (ValueError, AttributeError):
            return None
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json_strings(text: str) -> list[str]:
    """Every string inside a JSON document (one per line), else the text itself."""
    import json

    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            found.extend(value.splitlines())
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    try:
        walk(json.loads(text))
    except ValueError:
        found.extend(text.splitlines())
    return found


def scan_for_reference_code(handout: Path, forbidden: set[str], shared: set[str] = frozenset()) -> list[str]:
    """Every place in a handout text file that contains a forbidden reference line: 'path:line: the line'.

    A handout line that is itself a line of the stubs (`shared`, e.g. an import list that
    extends the reference's) is fine even when a shorter reference line is part of it.
    """
    found = []
    forbidden = sorted(forbidden, key=len, reverse=True)
    for path in sorted(p for p in Path(handout).rglob("*") if p.is_file()):
        text = _text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if len(stripped) < MIN_LINE or stripped in shared:
                continue
            hit = next((f for f in forbidden if f in stripped), None)
            if hit is not None:
                found.append(f"{path.relative_to(handout)}:{number}: {hit}")
    return found


def _looks_pickled(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with path.open("rb") as f:
        head = f.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2-5
        return True
    if head.startswith(b"PK\x03\x04"):  # torch.save writes a zip with a data.pkl inside
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith(".pkl") for name in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def scan_for_pickles(handout: Path) -> list[str]:
    return sorted(str(p.relative_to(handout)) for p in Path(handout).rglob("*") if p.is_file() and _looks_pickled(p))


def leaked_paths(handout: Path) -> list[str]:
    """Instructor-only things that must not be in the handout, by path."""
    handout = Path(handout)
    problems = []
    for relative in ("reference", "interop", "tests/hidden", "selftests", ".ci", ".git"):
        if (handout / relative).exists():
            problems.append(relative)
    for name in INSTRUCTOR_ONLY:
        if (handout / "lmgrade" / name).exists():
            problems.append(f"lmgrade/{name}")
    return problems


def check_handout(handout: Path, project_root: Path = PROJECT_ROOT) -> None:
    """Raise ReleaseError if the handout holds reference code, pickles or instructor-only files."""
    problems = []
    leaks = leaked_paths(handout)
    if leaks:
        problems.append("instructor-only paths: " + ", ".join(leaks))
    quoted = scan_for_reference_code(handout, forbidden_reference_lines(project_root), _lines_of(project_root / "student"))
    if quoted:
        problems.append("reference code in the handout:\n  " + "\n  ".join(quoted[:40]))
    pickles = scan_for_pickles(handout)
    if pickles:
        problems.append("pickled files (ship safetensors only): " + ", ".join(pickles))
    if problems:
        raise ReleaseError("the handout is not safe to publish:\n" + "\n".join(problems))


def files_changed_since_copy(stage: Path, project_root: Path, folders: tuple[str, ...]) -> list[str]:
    """Files of the staged copies of `folders` that now differ from (or are gone from) the project."""
    changed = []
    for folder in folders:
        for copied in sorted((stage / folder).rglob("*")):
            relative = copied.relative_to(stage)
            if copied.is_file() and relative not in (SNAPSHOT_RELPATH, BUG_OUTPUTS_RELPATH, Path("lmgrade") / RUBRIC_RELPATH):
                original = project_root / relative
                if not original.is_file() or original.read_bytes() != copied.read_bytes():
                    changed.append(str(relative))
    return changed
