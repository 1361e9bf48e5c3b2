"""README's promise to a newcomer, checked as a newcomer meets it.

The slow test clones this repository, runs README's first command exactly as README writes it
(a fresh virtual environment, a plain ``pip install .``, ``tracetui --demo``) in a
pseudo-terminal from the clone's root, reads the screen through a terminal emulator until live
demo events scroll, presses ``q``, and checks that the daemon and the demo workload it started
are gone. The quick test checks the mechanism that makes that work: every Python child tracetui
starts imports the installed package, not a ``tracetui`` folder in the working directory.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tracetui.core.client import rendezvous, spawn

pyte = pytest.importorskip("pyte")

ROWS, COLS = 40, 140


def repo_root() -> Path:
    here = Path(__file__).resolve().parent
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.skip("not inside a git checkout")
    return Path(out.stdout.strip())


def readme_commands(readme: Path) -> list[str]:
    """The commands of README's first ``sh`` block, comments stripped, in README's order."""
    block = re.search(r"```sh\n(.*?)```", readme.read_text(), re.S)
    assert block, "README.md has no ```sh block"
    cmds = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [c for c in cmds if c]


def test_children_import_the_installed_tracetui_not_the_working_directory(tmp_path: Path) -> None:
    # A source tree without its compiled module, as a clone is after a plain `pip install .`.
    fake = tmp_path / "tracetui"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the working directory was imported')\n")
    code = "import tracetui, sys; sys.stdout.write(tracetui.__file__)"
    out = subprocess.run(
        rendezvous.python_command("-c", code), cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert not out.stdout.startswith(str(tmp_path))
    assert spawn.daemon_command(tmp_path)[:2] == rendezvous.python_command()[:2]


def test_readme_starts_with_a_run_and_a_test_command() -> None:
    cmds = readme_commands(repo_root() / "README.md")
    assert len(cmds) == 2
    assert cmds[0].endswith("tracetui --demo")
    assert "pytest" in cmds[1]
    # .ci/run runs exactly README's test command.
    ci = (repo_root() / ".ci" / "run").read_text()
    assert cmds[1] in ci


def _processes_with_env(key: str, value: str) -> list[int]:
    """Pids of this user's processes whose environment holds KEY=VALUE."""
    needle = f"{key}={value}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{d}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state != "Z":
            found.append(int(d))
    return found


class Terminal:
    """A program in a pseudo-terminal, its screen kept by a VT100 emulator."""

    def __init__(self, cmd: str, cwd: Path, env: dict[str, str]) -> None:
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.proc = subprocess.Popen(
            ["bash", "-c", cmd],
            cwd=cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.transcript = bytearray()

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(left, 0.1))
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the program closed the terminal
                return
            self.transcript += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.5)
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.proc.poll() is not None:
                break
        tail = self.transcript[-3000:].decode(errors="replace")
        raise AssertionError(f"never saw {pattern!r}; screen:\n{self.text()}\n--- tail:\n{tail}")

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)


@pytest.mark.slow
@pytest.mark.timeout(900)  # a pip install inside; its own waits are bounded at 600 s
def test_readme_run_command_on_a_fresh_clone_shows_live_events(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(repo_root()), str(clone)], check=True)
    run_cmd = readme_commands(clone / "README.md")[0]

    run_dir = tmp_path / "run"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "TRACETUI_RUNTIME_DIR")
    }
    # Whatever virtual environment runs this test is not the newcomer's.
    venv_bin = os.path.dirname(os.path.realpath(shutil.which("python") or ""))
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if os.path.realpath(p) != venv_bin
    )
    env.update(
        TERM="xterm-256color",
        TRACETUI_RUNTIME_DIR=str(run_dir),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    env.pop("NO_COLOR", None)
    term = Terminal(run_cmd, clone, env)
    try:
        # Installing takes most of the time; then the console opens a live view of the demo.
        # A live row: time, CPU, event name, decoded fields.
        row = r"\d+\.\d{9}\s+\d+\s+sched_(?:switch|wakeup)\s+\w+=\d+"
        term.wait_for(row, timeout=600)
        count = r"([\d,]+) events"
        first = int(term.wait_for(count, timeout=10).group(1).replace(",", ""))
        deadline = time.monotonic() + 15
        later = first
        while later == first and time.monotonic() < deadline:
            term.pump(0.5)
            later = int(term.wait_for(count, timeout=10).group(1).replace(",", ""))
        assert later > first, "the live view did not scroll"

        workers = _processes_with_env("TRACETUI_RUNTIME_DIR", str(run_dir))
        assert workers, "no process of the demo was found running"
        term.press(b"q")
        deadline = time.monotonic() + 30
        while term.proc.poll() is None and time.monotonic() < deadline:
            term.pump(0.2)
        assert term.proc.returncode == 0, term.transcript[-2000:].decode(errors="replace")
        # What the console started (its daemon, the demo workload) is gone with it.
        deadline = time.monotonic() + 10
        while (left := _processes_with_env("TRACETUI_RUNTIME_DIR", str(run_dir))) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert left == [], f"still running after q: {left}"
        assert not (run_dir / rendezvous.PORT_FILE).exists()
    finally:
        term.close()
        for pid in _processes_with_env("TRACETUI_RUNTIME_DIR", str(run_dir)):
            os.kill(pid, signal.SIGKILL)
