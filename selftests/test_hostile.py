"""Hostile submissions end with the score they earned and a clear report; the grader survives.

Each file in hostile/ is an adapters file (or, for config_hardening/, a submission folder)
graded through `lmgrade.grading.grade.grade` (isolated, as `lmgrade grade` does) on the visible
Linear and softmax tests. Every hostile file has an honest Linear, so the expected score
shows that only the attacked item is affected.
"""

from pathlib import Path

import pytest

import os
import resource
import shutil
import socket
import time
from contextlib import contextmanager

import torch

from lmgrade.sandbox import intake
from lmgrade.sandbox import processes, tiers
from lmgrade.grading.grade import Selection, grade
from lmgrade.sandbox.isolation import ChildBackend, isolation_mode
from lmgrade.sandbox.replies import SubmissionError
from lmgrade.core.outcomes import ForbiddenCall, SubmissionBroken, SubmissionCrashed
from lmgrade.sandbox.static_scan import scan_path

HOSTILE = Path(__file__).parent / "hostile"
FILES = ["tests/test_linear.py", "tests/test_softmax.py"]
# One softmax test for the attacks that cost a timeout or a restarted child per test.
ONE_SOFTMAX_TEST = ["tests/test_linear.py", "tests/test_softmax.py::test_softmax_is_unchanged_by_adding_1000"]
LINEAR, SOFTMAX = 3.0, 3.0  # their points in lmgrade/core/rubric.toml


RUNNER: list = [None]  # the session's warm pytest (selftests/conftest.py), for every grading here


@pytest.fixture(autouse=True)
def _warm(warm_pytest):
    RUNNER[0] = warm_pytest


def graded(name: str, timeout: float = 10, files=FILES, **selection):
    path = HOSTILE / name
    selection = selection or {"adapters": str(path)}
    result = grade(Selection(**selection), profile="fast", tests=files, per_test_timeout=timeout, runner=RUNNER[0])
    scores = {s.item.id: s for s in result.scores if s.item.id in ("linear", "softmax")}
    return result, scores["linear"], scores["softmax"]


def all_messages(score) -> str:
    return "\n".join(f"{r.outcome}: {r.message}" for r in score.records)


@pytest.mark.parametrize("name, says", [
    ("import_time_exception.py", "RuntimeError: boom at import time"),
    ("sys_exit_at_import.py", "SystemExit"),
])
def test_a_submission_that_cannot_be_imported_scores_zero_with_the_reason(name, says):
    result, linear, softmax = graded(name)
    assert result.score == 0 and linear.score == softmax.score == 0
    assert says in all_messages(linear) and "could not import" in all_messages(softmax)


@pytest.mark.parametrize("name, outcome, says", [
    ("infinite_loop.py", "timeout", "ran longer than"),
    ("memory_bomb.py", "failed", "allocate"),
    ("os_exit_mid_test.py", "failed", "process exited with status 0"),
    ("killed_by_signal.py", "failed", "killed by signal SIGABRT"),
])
def test_a_runaway_softmax_loses_only_softmax_and_grading_resumes(name, outcome, says):
    # Each softmax test that loops or kills its process costs a timeout or a new child: one test shows it.
    result, linear, softmax = graded(name, timeout=3 if outcome == "timeout" else 6, files=ONE_SOFTMAX_TEST)
    assert linear.score == LINEAR, all_messages(linear)
    assert softmax.score == 0 and all(r.outcome != "passed" for r in softmax.records), all_messages(softmax)
    assert any(r.outcome == outcome and says in r.message for r in softmax.records), all_messages(softmax)


@pytest.mark.parametrize("name", ["monkeypatch_checks.py", "forge_results_file.py", "lying_tensor.py"])
def test_tampering_does_not_change_the_score_of_a_wrong_softmax(name):
    result, linear, softmax = graded(name)
    assert (linear.score, softmax.score, result.score) == (LINEAR, 0, LINEAR), all_messages(softmax)


def test_the_reference_can_be_neither_imported_nor_read_by_a_submission():
    result, linear, softmax = graded("steal_reference.py")
    assert (linear.score, softmax.score) == (LINEAR, 0), all_messages(softmax)


def test_printing_100_mb_is_capped_and_costs_nothing():
    result, linear, softmax = graded("print_100mb.py")
    assert linear.score == LINEAR and softmax.status == "not implemented"
    assert len(result.log) < 1_000_000


def test_a_forbidden_call_through_an_alias_is_reported_with_its_call_site():
    result, linear, softmax = graded("forbidden_alias.py")
    assert linear.score == LINEAR and softmax.score == 0
    assert "forbidden torch function" in softmax.reason and "forbidden_alias.py:" in softmax.reason


def test_configuration_files_shipped_in_a_submission_have_no_effect():
    """conftest.py, pytest.ini, pyproject.toml, sitecustomize.py and a .pth beside student/ are ignored."""
    result, linear, softmax = graded("config_hardening", submission=str(HOSTILE / "config_hardening"))
    assert linear.score == LINEAR, all_messages(linear)
    assert 0 < softmax.score < SOFTMAX, all_messages(softmax)  # its softmax ignores `dim`: only partly right
    assert not any("sitecustomize" in r.message or ".pth file" in r.message for r in linear.records + softmax.records)


# -- the sandbox itself, tier by tier ----------------------------------------------------------------
# These probes call one adapter in a child directly (no pytest run: seconds each). The static scan is
# switched off for them (`scan=False`): they show what the sandbox alone holds. A probe's adapter
# returns how often its attack worked; a sound sandbox gives 0, and with 0 the item scores 0 too.

TIERS = [pytest.param(t, marks=pytest.mark.skipif(tiers.detect(t).name == "none",
                                                  reason=f"{t} cannot be made here: {tiers.detect(t).detail}"))
         for t in ("tier1", "tier2")]


@contextmanager
def sandbox_tier(tier: str):
    before = os.environ.get(tiers.ENV)
    os.environ[tiers.ENV] = tier
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(tiers.ENV, None)
        else:
            os.environ[tiers.ENV] = before


def child(name: str, tier: str, scan: bool = False) -> ChildBackend:
    with sandbox_tier(tier):
        backend = ChildBackend(impl=None, adapters=str(HOSTILE / name))
    if not scan:
        backend.scan = None
    return backend


def probe(name: str, tier: str, dim: int = -1, backend: ChildBackend | None = None) -> float:
    own = backend is None
    backend = backend or child(name, tier)
    try:
        return float(backend.call("run_softmax", torch.randn(2, 3), dim).sum())
    finally:
        if own:
            backend.shutdown()


def test_the_sandbox_tier_is_reported_and_detection_never_raises():
    for request in ("auto", "tier1", "tier2", "none", "bogus"):
        tier = tiers.detect(request)
        assert tier.name in ("bwrap", "uid", "none") and tier.detail
    assert isolation_mode() in ("bwrap", "uid", "none")


@pytest.mark.parametrize("tier", TIERS)
def test_escape_attempts_find_no_grader_file(tier):
    """Reference, hidden tests, bug catalogue, oracle cache, rubric: none readable from the child (chroot tricks,
    /proc/*/root and /proc/*/cwd, paths from other processes' command lines). The same probe without a sandbox
    finds them, so the probe can fail."""
    assert probe("escape_reads_grader_files.py", tier) == 0


def test_the_escape_probe_finds_the_grader_files_without_a_sandbox():
    assert probe("escape_reads_grader_files.py", "none") > 0


@pytest.mark.parametrize("tier", TIERS)
def test_the_hosts_processes_cannot_be_read(tier):
    assert probe("host_proc.py", tier) == 0


@pytest.mark.parametrize("tier", TIERS)
def test_no_ptrace_or_process_vm_writev_on_another_process(tier):
    assert probe("ptrace_other_process.py", tier) == 0


@pytest.mark.parametrize("tier", TIERS)
def test_no_pth_file_can_be_dropped_into_the_graders_python(tier):
    assert probe("pth_into_site_packages.py", tier) == 0


def test_the_pth_probe_succeeds_without_a_sandbox_as_root():
    if os.geteuid() != 0:
        pytest.skip("as a normal user site-packages may be unwritable anyway")
    assert probe("pth_into_site_packages.py", "none") > 0


@pytest.mark.parametrize("tier", TIERS)
def test_dev_shm_and_tmp_do_not_persist_between_children(tier):
    backend = child("shm_persistence.py", tier)
    try:
        assert probe("shm_persistence.py", tier, backend=backend) == 0
        backend.close()  # the next call starts a fresh child, as after a crash or in the next grading
        assert probe("shm_persistence.py", tier, backend=backend) == 0
    finally:
        backend.shutdown()


@pytest.mark.parametrize("tier", TIERS)
def test_loopback_network(tier):
    """Tier 1: no network at all. Tier 2 cannot close it (no namespaces): the static scan flags sockets instead."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        reached = probe("loopback_network.py", tier, dim=server.getsockname()[1])
    finally:
        server.close()
    if tier == "tier1":
        assert reached == 0
    assert any(f.name == "import socket" for f in scan_path(HOSTILE / "loopback_network.py", adapters_file=True).findings)


@pytest.mark.parametrize("tier", TIERS)
def test_a_fork_bomb_is_bounded_and_everything_it_started_is_killed(tier):
    """Bounded by the process limit (RLIMIT_NPROC of its throw-away uid), or stopped earlier by the grader's
    watch on the memory of the whole tree (forks of a process holding torch add up); either way none survive."""
    backend = child("fork_bomb.py", tier)
    try:
        uid = backend.uid
        try:
            made = probe("fork_bomb.py", tier, backend=backend)
            assert made < tiers.PROCESS_LIMIT, made
            if uid is not None:
                assert len(processes.processes_of(uid)) > 0  # still there, detached in their own sessions
        except SubmissionCrashed as stopped:
            assert "all its processes together" in str(stopped)
        backend.close()
        if uid is not None:
            assert processes.processes_of(uid) == []
    finally:
        backend.shutdown()


@pytest.mark.parametrize("tier", TIERS)
def test_memory_is_limited_for_the_whole_process_tree(tier, monkeypatch):
    from lmgrade.sandbox import isolation

    monkeypatch.setattr(isolation, "MEMORY_LIMIT_BYTES", 1 << 30)  # 8 x 200 MiB, each under the per-process limit
    backend = child("memory_multiplication.py", tier)
    if backend.uid is None:
        pytest.skip("the tree is measured by its throw-away uid, which this tier does not have here")
    try:
        start = time.monotonic()
        with pytest.raises(SubmissionCrashed, match="all its processes together"):
            probe("memory_multiplication.py", tier, dim=200, backend=backend)
        assert time.monotonic() - start < 50
    finally:
        backend.shutdown()


@pytest.mark.parametrize("tier", TIERS)
def test_classmates_children_cannot_be_killed_and_their_files_neither_read_nor_written(tier):
    victim = child("forbidden_alias.py", tier)
    try:
        victim.call("run_linear", 2, 2, torch.eye(2), torch.ones(1, 2))
        pid = victim.proc.pid
        victim_file = Path(victim.selection["adapters"])
        before = victim_file.read_bytes()
        assert probe("kill_classmates.py", tier) == 0 or tier == "tier2"  # tier 2: only its own uid's processes
        assert victim.proc is not None and victim.proc.poll() is None and victim.proc.pid == pid
        assert probe("rewrite_classmates.py", tier) == 0
        assert victim_file.read_bytes() == before
        victim.call("run_linear", 2, 2, torch.eye(2), torch.ones(1, 2))
        assert victim.proc.pid == pid
    finally:
        victim.shutdown()


@pytest.mark.parametrize("tier", TIERS)
def test_disabling_the_forbidden_call_detector_is_caught_at_run_time(tier):
    backend = child("disable_detector.py", tier)
    try:
        with pytest.raises(ForbiddenCall, match="detector was disabled"):
            backend.call("run_softmax", torch.randn(2, 3), -1)
    finally:
        backend.shutdown()


@pytest.mark.parametrize("tier", TIERS)
def test_a_forged_flop_counter_is_caught(tier):
    backend = child("forge_flops.py", tier)
    try:
        backend.count_flops = True
        with pytest.raises(ForbiddenCall, match="FLOP counter"):
            backend.call("run_softmax", torch.randn(2, 3), -1)
    finally:
        backend.shutdown()
    honest = child("forbidden_alias.py", tier)  # an honest count passes: the canaries' FLOPs are taken off
    try:
        honest.count_flops = True
        honest.call("run_linear", 4, 3, torch.randn(3, 4), torch.randn(5, 4))
        assert honest.last_flops == 2 * 5 * 4 * 3
    finally:
        honest.shutdown()


def test_an_exception_class_name_cannot_carry_inputs_into_a_hidden_items_message():
    from lmgrade.grading.recorder import classify

    backend = child("hidden_inputs_in_message.py", "auto")
    try:
        with pytest.raises(SubmissionError) as caught:
            backend.call("run_softmax", torch.randn(2, 3), -1)
    finally:
        backend.shutdown()
    assert "SECRET" not in str(caught.value).split("\n")[0]
    assert "SECRET" not in classify(caught)[2]  # the category, all a hidden item shows


def test_a_deeply_nested_message_is_refused_by_its_depth_before_it_is_parsed():
    from lmgrade.sandbox import wire
    read, write = os.pipe()
    head = b"[" * 5000 + b"]" * 5000
    os.write(write, __import__("struct").pack("<QQQ", len(head), 0, 0) + head)
    with pytest.raises(wire.ProtocolError, match="nested deeper"):
        wire.receive(read)
    os.close(read), os.close(write)


def test_a_huge_reply_is_refused_before_it_is_parsed():
    backend = child("deep_json_reply.py", "auto")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with pytest.raises(SubmissionCrashed, match="invalid reply"):
            backend.call("run_softmax", torch.randn(2, 3), -1)
    finally:
        backend.shutdown()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: under 100 MB more


# -- whole gradings: the score a sound grader gives ---------------------------------------------------

@pytest.mark.parametrize("name, says, linear_score", [
    ("forbidden_in_thread.py", "threading", LINEAR),
    ("private_aliases.py", "softmax at private_aliases.py:12", LINEAR),
    # Tampering in module-level code (sys.modules at import) runs before any item: it costs every item.
    ("disable_detector.py", "modules (not allowed in any submission) at disable_detector.py:6", 0),
])
def test_forbidden_work_the_run_time_detector_cannot_see_is_found_by_the_static_scan(name, says, linear_score):
    result, linear, softmax = graded(name)
    assert (linear.score, softmax.score) == (linear_score, 0), all_messages(softmax)
    assert says in softmax.reason, softmax.reason


def test_the_static_scan_sees_every_private_alias_and_bytecode(tmp_path):
    aliases = ["torch._softmax(x, 0, False)", "torch._log_softmax(x, 0, False)", "torch._C._nn.cross_entropy_loss(x, t)",
               "torch.ops.aten._scaled_dot_product_attention_math(x, x, x)", "torch.special.softmax(x, 0)",
               "torch.ops.aten.softmax.int(x, 0)", "getattr(torch, '_softmax')(x, 0, False)", "F.softmax(x, 0)"]
    for call in aliases:
        source = tmp_path / "adapters.py"
        source.write_text(f"import torch\nimport torch.nn.functional as F\n\ndef run_softmax(x, t):\n    return {call}\n")
        found = scan_path(source, adapters_file=True).violations("run_softmax", frozenset({"softmax", "log_softmax",
                                                                 "cross_entropy", "scaled_dot_product_attention"}))
        assert found, call
    import py_compile

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "layers.py").write_text("import torch\n\ndef softmax(x, dim):\n    return torch._softmax(x, dim, False)\n")
    py_compile.compile(str(package / "layers.py"), cfile=str(package / "layers.pyc"))
    (package / "layers.py").write_text("def softmax(x, dim):\n    return x\n")  # the source shown is innocent
    result = scan_path(package)
    assert [f.file for f in result.findings] == ["layers.pyc"]
    assert result.violations("run_softmax", frozenset({"softmax"}))
    assert not result.violations("run_softmax", frozenset())  # [allow]: an item that allows softmax


def test_a_submission_that_cannot_be_imported_hears_that_before_any_scan_finding(tmp_path):
    """Its package is not beside its adapters file, so the scan sees none of its own functions and takes
    `pkg.softmax` for torch's: the student is told the import failed, not that they called a forbidden function."""
    path = tmp_path / "adapters.py"
    path.write_text("import package_not_beside_me as pkg\n\ndef run_softmax(x, dim):\n    return pkg.softmax(x, dim)\n")
    backend = ChildBackend(impl=None, adapters=str(path))
    backend.current_item = "softmax"
    try:
        with pytest.raises(SubmissionBroken, match="could not import"):
            backend.call("run_softmax", torch.randn(2, 3), -1)
    finally:
        backend.shutdown()


TRAINING_WRAPPERS = {
    "get_adamw_cls": ["import torch\nclass AdamW(torch.optim.AdamW):\n    pass\n\ndef get_adamw_cls():\n    return AdamW\n",
                      "from torch.optim import AdamW as A\n\ndef get_adamw_cls():\n    return A\n",
                      "import torch\nclass Mine(torch.optim.Optimizer):\n    def step(self):\n"
                      "        torch.optim._functional.adamw([], [], [], [], [], [])\n\ndef get_adamw_cls():\n    return Mine\n"],
    "run_gradient_clipping": ["import torch\n\ndef run_gradient_clipping(p, m):\n    torch.nn.utils.clip_grad_norm_(p, m)\n",
                              "from torch.nn.utils import clip_grad_norm_\n\ndef run_gradient_clipping(p, m):\n"
                              "    clip_grad_norm_(p, m)\n"],
}


@pytest.mark.parametrize("adapter", sorted(TRAINING_WRAPPERS))
def test_training_parts_that_wrap_torch_optim_or_its_clipping_are_found_by_the_scan(tmp_path, adapter):
    """The optimizer and the clipping are the student's own: torch.optim.AdamW (subclassed, imported or its
    functional form) and clip_grad_norm_ behind the adapter are forbidden calls of their items."""
    from lmgrade.sandbox.policy import forbidden_for

    item = {"get_adamw_cls": "adamw", "run_gradient_clipping": "gradient_clipping"}[adapter]
    for source in TRAINING_WRAPPERS[adapter]:
        path = tmp_path / "adapters.py"
        path.write_text(source)
        assert scan_path(path, adapters_file=True).violations(adapter, forbidden_for(item)), source
    own = "import torch\nclass AdamW(torch.optim.Optimizer):\n    pass\n\ndef get_adamw_cls():\n    return AdamW\n"
    path.write_text(own)
    assert not scan_path(path, adapters_file=True).violations("get_adamw_cls", forbidden_for("adamw"))


def test_symlinks_in_a_submission_are_refused_everywhere(tmp_path):
    """`student -> <grader>/reference` scored 100/100; now the submission is refused and scores 0."""
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "student").symlink_to(Path(__file__).resolve().parents[1] / "reference")
    result = grade(Selection(impl=None, submission=str(tmp_path / "linked")), profile="fast", tests=FILES, runner=RUNNER[0])
    assert result.score == 0 and all("refused" in s.reason and "symbolic link" in s.reason for s in result.scores)
    (tmp_path / "inner" / "student").mkdir(parents=True)
    (tmp_path / "inner" / "student" / "layers.py").symlink_to(Path(__file__).resolve().parents[1] / "reference" / "layers.py")
    with pytest.raises(intake.SubmissionRefused, match="symbolic link"):
        intake.take_in_submission(tmp_path / "inner", tmp_path / "copy")
    with pytest.raises(intake.SubmissionRefused, match="symbolic link"):  # the Gradescope bundle's intake
        intake.gradescope(tmp_path / "linked", Path(__file__).resolve().parents[1] / "student", tmp_path / "gs")
    os.mkfifo(tmp_path / "inner" / "student" / "fifo")
    (tmp_path / "inner" / "student" / "layers.py").unlink()
    with pytest.raises(intake.SubmissionRefused, match="FIFO"):
        intake.take_in_submission(tmp_path / "inner", tmp_path / "copy2")


@pytest.mark.parametrize("tier", TIERS)
def test_an_empty_submission_that_tries_to_escape_scores_zero(tier):
    with sandbox_tier(tier):
        result, linear, softmax = graded("empty_escape", submission=str(HOSTILE / "empty_escape"))
    assert result.score == 0, all_messages(linear) + all_messages(softmax)
    assert result.sandbox.startswith("sandbox: " + tiers.detect(tier).label)


def test_a_submission_that_hangs_everywhere_is_graded_within_its_budget():
    budget = 12
    start = time.monotonic()
    result = grade(Selection(impl=None, adapters=str(HOSTILE / "hang_everywhere.py")), profile="fast", tests=FILES, runner=RUNNER[0],
                   time_budget=budget)
    elapsed = time.monotonic() - start
    scores = {s.item.id: s for s in result.scores}
    assert elapsed < budget + 60, elapsed
    assert result.score == 0 and {"linear", "softmax"} <= set(result.timed_out), result.timed_out
    assert all(r.outcome in ("timeout", "skipped") for item in ("linear", "softmax") for r in scores[item].records)


def test_untrusted_code_is_refused_where_no_sandbox_can_be_made_unless_no_sandbox_is_given():
    from lmgrade.grading.grade import GradingFailed

    with pytest.raises(GradingFailed, match="--no-sandbox"):
        grade(Selection(impl=None, adapters=str(HOSTILE / "forbidden_alias.py")), profile="fast", tests=FILES,
              sandbox_request="no-such-tier")
    with sandbox_tier("no-such-tier"), pytest.raises(tiers.SandboxUnavailable, match="--no-sandbox"):
        ChildBackend(impl=None, adapters=str(HOSTILE / "forbidden_alias.py"))
