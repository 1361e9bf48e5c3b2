"""The ring buffer's lock-free protocol under ThreadSanitizer (native/tests/stress.c).

Writer threads, a consumer, a snapshotter and flight-mode toggles run against one channel in a
C program built with -fsanitize=thread: any data race in the protocol, any torn record, any
timestamp going backwards or any miscount (emitted != read + lost) fails the test.  The same
program built plainly (-O2) runs the per-CPU fast path ThreadSanitizer cannot follow (the
restartable-sequence commit, the TSC read without lfence) with more threads than CPUs, so
writers are preempted and migrate mid-record.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[2] / "native"
CC = shutil.which("cc") or shutil.which("gcc")


def build_stress(out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        CC or "cc", "-g", "-std=gnu11", *flags, f"-I{NATIVE}",
        str(NATIVE / "tests" / "stress.c"), str(NATIVE / "ttrb.c"),
        "-o", str(out), "-lpthread", "-lrt",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def stress_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CC is None:
        pytest.skip("no C compiler to build the stress program")
    out = tmp_path_factory.mktemp("stress") / "stress"
    r = build_stress(out, "-O1", "-fsanitize=thread")
    if r.returncode != 0 and "tsan" in r.stderr.lower():
        pytest.skip(f"ThreadSanitizer's runtime is not installed: {r.stderr.strip()[:200]}")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def plain_stress_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CC is None:
        pytest.skip("no C compiler to build the stress program")
    out = tmp_path_factory.mktemp("stress-plain") / "stress"
    r = build_stress(out, "-O2")
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("rseq", [1, 0], ids=["rseq", "no-rseq"])
@pytest.mark.parametrize("flight", [0, 1], ids=["discard", "flight-toggling"])
def test_per_cpu_fast_path_is_exact_and_ordered(
    plain_stress_binary: Path, flight: int, rseq: int
) -> None:
    # no-rseq: glibc registers no rseq area (its tunable), so every commit takes the atomic
    # word and the CPU comes from sched_getcpu(): the fallback a kernel without rseq gets.
    name = f"/tracetui-test-stress-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    threads, per_thread = 3 * (os.cpu_count() or 1), 100000
    env = dict(os.environ)
    if not rseq:
        env["GLIBC_TUNABLES"] = "glibc.pthread.rseq=0"
    r = subprocess.run(
        [str(plain_stress_binary), name, str(threads), str(per_thread), "0", str(flight)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    emitted, read, lost = (int(kv.split("=")[1]) for kv in r.stdout.split())
    assert emitted == threads * per_thread and emitted == read + lost and read > 0


@pytest.mark.parametrize("is_global", [0, 1], ids=["percpu", "global"])
@pytest.mark.parametrize("flight", [0, 1], ids=["discard", "flight-toggling"])
def test_protocol_is_race_free_and_exact(stress_binary: Path, is_global: int, flight: int) -> None:
    name = f"/tracetui-test-stress-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TSAN_OPTIONS": "halt_on_error=1 exitcode=66 report_signal_unsafe=0"}
    r = subprocess.run(
        [str(stress_binary), name, "4", "20000", str(is_global), str(flight)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ThreadSanitizer" not in r.stderr
    emitted, read, lost = (int(kv.split("=")[1]) for kv in r.stdout.split())
    assert emitted == 80000 and emitted == read + lost and read > 0


@pytest.mark.slow
def test_synchronize_waits_for_every_emit_and_frees_safely(tmp_path: Path) -> None:
    """ttpr_synchronize under AddressSanitizer (native/tests/sync_stress.c): target lists freed
    right after it never reach a writer, and the swapped-out channel gains no record after it."""
    if CC is None:
        pytest.skip("no C compiler to build the stress program")
    out = tmp_path / "sync_stress"
    cmd = [
        CC, "-O1", "-g", "-std=gnu11", "-fsanitize=address", f"-I{NATIVE}",
        str(NATIVE / "tests" / "sync_stress.c"), str(NATIVE / "ttrb.c"), str(NATIVE / "ttpr.c"),
        "-o", str(out), "-lpthread", "-lrt",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 and "asan" in r.stderr.lower():
        pytest.skip(f"AddressSanitizer's runtime is not installed: {r.stderr.strip()[:200]}")
    assert r.returncode == 0, r.stderr
    name = f"/tracetui-test-sync-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    r = subprocess.run(
        [str(out), name, "4", "150"],
        capture_output=True,
        text=True,
        env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    fields = dict(kv.split("=") for kv in r.stdout.split())
    assert int(fields["emitted"]) > 0
    assert (int(fields["held"]), int(fields["released"])) == (-110, 0)  # -ETIMEDOUT, then 0
