"""Taking in a submission: regular files only, bounded, copied to a private folder.

One code path for `lmgrade grade`, `grade-all` and the Gradescope bundle's run_autograder
(`python -m lmgrade.sandbox.intake gradescope ...`). Symbolic links (even one named `student`),
devices, FIFOs, sockets and native extension modules are refused with a message naming the
file; nothing is ever followed out of the submission. Sizes and counts are bounded.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

MAX_FILES = 200
MAX_FILE_BYTES = 4 << 20
MAX_TOTAL_BYTES = 16 << 20
MAX_DEPTH = 8
SKIPPED_DIRS = ("__pycache__", ".git", ".hypothesis", ".pytest_cache", ".ipynb_checkpoints")
NATIVE = (".so", ".pyd", ".dylib", ".dll")


class SubmissionRefused(ValueError):
    """The submission holds something the grader will not take in; the message says what."""


def _kind(mode: int) -> str:
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
            "not a regular file")


def check_tree(root: Path, shown_as: str) -> list[tuple[Path, int]]:
    """Every file under root (relative path, size), refusing anything but regular files and folders."""
    root = Path(root)
    top = os.lstat(root)
    if not stat.S_ISDIR(top.st_mode):
        raise SubmissionRefused(f"{shown_as} is {_kind(top.st_mode) if not stat.S_ISREG(top.st_mode) else 'a file'}, "
                                "not a folder: upload the folder itself (links are not followed)")
    found: list[tuple[Path, int]] = []
    total = 0
    for current, dirs, files in os.walk(root, followlinks=False):
        here = Path(current)
        depth = len(here.relative_to(root).parts)
        if depth > MAX_DEPTH:
            raise SubmissionRefused(f"{shown_as}: folders nested deeper than {MAX_DEPTH} levels")
        for name in sorted(dirs):
            mode = os.lstat(here / name).st_mode
            if not stat.S_ISDIR(mode):  # a link to a folder is listed among dirs
                raise SubmissionRefused(f"{shown_as}/{(here / name).relative_to(root)} is {_kind(mode)}: "
                                        "only regular files and folders are accepted")
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = here / name
            info = os.lstat(path)
            shown = f"{shown_as}/{path.relative_to(root)}"
            if not stat.S_ISREG(info.st_mode):
                raise SubmissionRefused(f"{shown} is {_kind(info.st_mode)}: only regular files are accepted")
            if name.endswith(NATIVE):
                raise SubmissionRefused(f"{shown} is a native library: only Python code is accepted")
            if info.st_size > MAX_FILE_BYTES:
                raise SubmissionRefused(f"{shown} has {info.st_size} bytes (at most {MAX_FILE_BYTES} per file)")
            total += info.st_size
            found.append((path.relative_to(root), info.st_size))
            if len(found) > MAX_FILES:
                raise SubmissionRefused(f"{shown_as} holds more than {MAX_FILES} files")
            if total > MAX_TOTAL_BYTES:
                raise SubmissionRefused(f"{shown_as} holds more than {MAX_TOTAL_BYTES} bytes")
    return found


def _copy_regular(source: Path, dest: Path) -> None:
    """Copy one file that must still be a regular file when opened (no race to a link)."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SubmissionRefused(f"{source.name} changed into something other than a regular file")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(fd, "rb", closefd=False) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)


def take_in_package(folder: Path, dest: Path, shown_as: str = "student") -> Path:
    """Copy the package folder (regular files only) to dest; return dest."""
    for relative, _ in check_tree(folder, shown_as):
        _copy_regular(Path(folder) / relative, Path(dest) / relative)
    Path(dest).mkdir(parents=True, exist_ok=True)
    return Path(dest)


SOURCE_SKIPPED_DIRS = SKIPPED_DIRS + (".venv", "venv", "env", "site-packages", "node_modules", "build", "dist", "data")


def source_root(adapters: Path) -> Path:
    """Where an adapters file's own package lives: its folder, or the folder above a tests/ folder
    (CS336's layout: repo/tests/adapters.py imports repo/cs336_basics)."""
    folder = Path(adapters).parent
    return folder.parent if folder.name == "tests" else folder


def take_in_adapters(path: Path, dest: Path) -> Path:
    """An adapters file and the Python sources beside it (the package it imports), bounded.

    Only .py files are taken from the source root (data files, virtual environments and caches
    stay behind); a .py file that is a link, or too many or too large ones, refuse the whole.
    Everything lands under dest's folder, in the source root's layout; returns the adapters copy."""
    path = Path(path)
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionRefused(f"{path.name} is {_kind(info.st_mode)}: only a regular file is accepted")
    root = source_root(path)
    relative_adapters = path.relative_to(root)
    dest_root = Path(dest).parent
    taken, total = 0, 0
    for current, dirs, files in os.walk(root, followlinks=False):
        here = Path(current)
        if len(here.relative_to(root).parts) > MAX_DEPTH:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if d not in SOURCE_SKIPPED_DIRS and not d.startswith(".")
                         and stat.S_ISDIR(os.lstat(here / d).st_mode))
        for name in sorted(f for f in files if f.endswith(".py")):
            source = here / name
            file_info = os.lstat(source)
            shown = str(source.relative_to(root))
            if not stat.S_ISREG(file_info.st_mode):
                raise SubmissionRefused(f"{shown} is {_kind(file_info.st_mode)}: only regular files are accepted")
            taken, total = taken + 1, total + file_info.st_size
            if file_info.st_size > MAX_FILE_BYTES or taken > MAX_FILES or total > MAX_TOTAL_BYTES:
                raise SubmissionRefused(f"the Python sources beside {path.name} exceed the limits "
                                        f"({MAX_FILES} files, {MAX_FILE_BYTES} bytes each, {MAX_TOTAL_BYTES} in all)")
            _copy_regular(source, dest_root / source.relative_to(root))
    return dest_root / relative_adapters


def take_in_submission(submission: Path, dest_root: Path) -> Path:
    """A folder holding student/: copy student/ to dest_root/student; return dest_root."""
    submission = Path(submission)
    info = os.lstat(submission)
    if not stat.S_ISDIR(info.st_mode):
        raise SubmissionRefused(f"{submission} is {_kind(info.st_mode)}, not a folder")
    package = submission / "student"
    if not os.path.lexists(package):
        raise SubmissionRefused(f"{submission} holds no student/ folder")
    take_in_package(package, Path(dest_root) / "student")
    return Path(dest_root)


def gradescope(submission: Path, stubs: Path, dest_root: Path) -> str:
    """run_autograder's intake: find the package in what was uploaded, lay it over the stubs.

    The package is `student/` at the top, the .py files at the top, or a `student/` folder up
    to four levels down. Returns where it was found (relative), for the log.
    """
    submission = Path(submission)
    check_tree(submission, "your submission")  # refuses links anywhere, `student -> ...` included
    if (submission / "student").is_dir():
        found = submission / "student"
    elif any(p.suffix == ".py" for p in submission.iterdir() if p.is_file()):
        found = submission
    else:
        candidates = sorted(p for p in submission.rglob("student") if p.is_dir()
                            and len(p.relative_to(submission).parts) <= 4
                            and not any(part.startswith(".") for part in p.relative_to(submission).parts))
        if not candidates:
            raise SubmissionRefused("No student/ folder and no .py files were found in your submission. Upload your "
                                    "student/ folder (or the .py files inside it).")
        found = candidates[0]
    package = Path(dest_root) / "student"
    package.mkdir(parents=True, exist_ok=True)
    for stub in sorted(Path(stubs).glob("*.py")):  # a file the submission lacks stays a stub
        shutil.copy(stub, package / stub.name)
    take_in_package(found, package, shown_as=str(found.relative_to(submission.parent)))
    return str(found.relative_to(submission.parent))


def main(argv: list[str] | None = None) -> int:
    """python -m lmgrade.sandbox.intake gradescope SUBMISSION STUBS DEST: exit 3 with the reason if refused."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4 or argv[0] != "gradescope":
        print("usage: python -m lmgrade.sandbox.intake gradescope SUBMISSION STUBS DEST", file=sys.stderr)
        return 2
    try:
        where = gradescope(Path(argv[1]), Path(argv[2]), Path(argv[3]))
    except (SubmissionRefused, OSError) as error:
        print(f"Your submission was not accepted: {error}")
        return 3
    print(f"grading the package from {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
