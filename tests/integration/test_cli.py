"""The ``tracetui`` command line end to end: real processes against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tracetui.core.client import rendezvous

if TYPE_CHECKING:
    from conftest import DaemonHandle

SEED = [
    "mkdir mytrace",
    "mkdir mytrace/processes",
    "write mytrace/processes/subbuf_size 256K",
    "write mytrace/processes/n_subbuf 8",
    "write mytrace/processes/flight 1",
    "write mytrace/processes/allocate 1",
    "write mytrace/filter 0",
    "write mytrace/filter sched_switch",
    "write mytrace/processes/filter proc_exec",
    "write mytrace/start 1",
]


def tracetui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracetui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracetui: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_the_seed_session_works_as_written(daemon: DaemonHandle) -> None:
    for command in SEED:
        r = daemon.cli(*command.split())
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), command
    c = daemon.client
    assert c.read("mytrace/start") == "1"
    assert c.read("mytrace/filter") == "sched_switch"
    assert c.read("mytrace/processes/filter") == "proc_exec"
    assert c.read("mytrace/processes/subbuf_size") == "262144"
    assert c.read("mytrace/processes/n_subbuf") == "8"
    assert c.read("mytrace/processes/flight") == "1"
    assert c.read("mytrace/processes/allocate") == "1"
    assert c.read("mytrace/main/allocate") == "1"  # start allocated main
    assert len(daemon.shm()) == 2
    r = daemon.cli("write", "mytrace/start", "0")
    assert r.returncode == 0


def test_ls_read_and_recursive_listing(daemon: DaemonHandle) -> None:
    daemon.cli("mkdir", "t", "t/c")
    r = daemon.cli("ls")
    assert r.returncode == 0
    out = r.stdout.split()  # files first (others may add root files), then the traces
    assert out[:2] == ["markers", "status"] and out[-1] == "t/" and out.count("t/") == 1
    r = daemon.cli("ls", "-R", "t")
    lines = r.stdout.split()
    assert lines[:4] == ["t/start", "t/filter", "t/output", "t/snapshot"]
    assert "t/main/" in lines and "t/c/stats" in lines
    assert daemon.cli("read", "t/c/flight").stdout == "0\n"


def test_json_output(daemon: DaemonHandle) -> None:
    assert json.loads(daemon.cli("--json", "mkdir", "j").stdout) == {"ok": True, "paths": ["j"]}
    entries = json.loads(daemon.cli("ls", "--json", "j").stdout)
    assert {"name": "main", "kind": "dir", "writable": False} in entries
    assert {"name": "start", "kind": "file", "writable": True} in entries
    rec = json.loads(daemon.cli("ls", "-R", "--json", "j").stdout)
    assert {"name": "flight", "kind": "file", "writable": True, "path": "j/main/flight"} in rec
    doc = json.loads(daemon.cli("--json", "read", "j/main/n_subbuf").stdout)
    assert doc == {"path": "j/main/n_subbuf", "value": "8"}
    doc = json.loads(daemon.cli("write", "--json", "j/filter", "0").stdout)
    assert doc == {"ok": True, "path": "j/filter", "value": "0"}


def test_json_read_parses_structured_files(daemon: DaemonHandle) -> None:
    daemon.cli("mkdir", "s")
    daemon.cli("write", "s/main/allocate", "1")
    doc = json.loads(daemon.cli("--json", "read", "s/main/stats").stdout)
    assert set(doc["stats"]) >= {"total"}
    assert doc["stats"]["total"]["recorded"] == 0 and "discarded" in doc["stats"]["total"]
    daemon.cli("write", "s/filter", "0")
    daemon.cli("write", "s/filter", "sched_*")
    doc = json.loads(daemon.cli("--json", "read", "s/filter").stdout)
    assert doc["rules"] == ["sched_*"]
    doc = json.loads(daemon.cli("--json", "read", "markers").stdout)
    assert doc["markers"] == []


def test_refusals_are_one_sentence_and_exit_1(daemon: DaemonHandle) -> None:
    daemon.cli("mkdir", "r")
    r = daemon.cli("mkdir", "r")
    assert r.returncode == 1 and r.stdout == ""
    assert one_sentence(r.stderr) == "tracetui: trace 'r' already exists"
    r = daemon.cli("--json", "write", "r/main/n_subbuf", "3")
    assert r.returncode == 1
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "EINVAL" and err["errno"] == 22 and "power of two" in err["message"]
    one_sentence(r.stderr)


def test_usage_errors_exit_2(daemon: DaemonHandle) -> None:
    assert daemon.cli("write", "r/filter").returncode == 2
    assert daemon.cli("frobnicate").returncode == 2


@pytest.mark.parametrize("verb", ["ls", "mkdir", "rmdir", "read", "write", "daemon", "dump"])
def test_every_verb_has_help(verb: str) -> None:
    r = tracetui(verb, "--help")
    assert r.returncode == 0 and "usage: tracetui" in r.stdout


def test_top_level_help_documents_exit_codes() -> None:
    r = tracetui("--help")
    assert r.returncode == 0
    assert "exit codes" in r.stdout and "3 no daemon answers" in r.stdout
    assert "--keep-daemon" in r.stdout and "--layout" in r.stdout and "--demo" in r.stdout


def test_no_daemon_exits_3_and_says_how_to_start_one(tmp_path: Path) -> None:
    env = {**os.environ, rendezvous.ENV: str(tmp_path / "none")}
    r = tracetui("ls", env=env)
    assert r.returncode == 3
    assert "start one with `tracetui daemon --detach`" in one_sentence(r.stderr)
    r = tracetui("--runtime-dir", str(tmp_path / "other"), "read", "status")
    assert r.returncode == 3 and str(tmp_path / "other") in r.stderr


def test_daemon_detach_starts_once_and_the_cli_finds_it(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    r = tracetui("daemon", "--detach", "--runtime-dir", str(directory))
    assert r.returncode == 0 and "started" in r.stdout
    info = rendezvous.read_port_file(directory)
    try:
        r = tracetui("--json", "daemon", "--detach", "--runtime-dir", str(directory))
        assert r.returncode == 0
        assert json.loads(r.stdout) == {
            "pid": info.pid,
            "runtime_dir": str(directory),
            "started": False,
        }
        r = tracetui("--runtime-dir", str(directory), "read", "status")
        assert r.returncode == 0 and f"pid {info.pid}" in r.stdout
    finally:
        os.kill(info.pid, 15)
    deadline = time.monotonic() + 10
    while rendezvous.pid_alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not rendezvous.pid_alive(info.pid)
    assert not (directory / rendezvous.PORT_FILE).exists()
