"""Run the app on one study as a subprocess: ``<app-command> -i IN -o OUT -m MODELS``.

The app runs in its own session (process group) so a timeout or shutdown kills it with
all its children, and its pid plus kernel start time are recorded in ``job.json``: if
the gateway is killed with ``kill -9``, the orphaned app is found and killed at the next
start before the study is re-run, so two runs never write the same output folder.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOGGER = logging.getLogger(__name__)

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2  # the app's documented exit statuses
_LOG_TAIL_BYTES = 4000


@dataclass(frozen=True)
class AppResult:
    """Outcome of one app run."""

    exit_code: int | None
    """Exit status; ``None`` when the run was killed (timeout or shutdown)."""
    duration_s: float
    timed_out: bool
    log_tail: str


def process_start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` (``/proc/<pid>/stat`` field 22), or ``None`` if it is gone.

    Together with the pid it identifies a process across pid reuse. A zombie (exited,
    not yet reaped by its parent) counts as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    rest = stat.rsplit(")", 1)[1].split()
    if rest[0] == "Z":
        return None
    return int(rest[19])


def kill_orphan(pid: int, start_ticks: int | None, wait_s: float = 10.0) -> bool:
    """Kill the process group of an app left running by a crashed gateway; True if one was killed."""
    if start_ticks is None or process_start_ticks(pid) != start_ticks:
        return False
    LOGGER.warning("killing orphaned app process group %d from a previous gateway run", pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and process_start_ticks(pid) == start_ticks:
        time.sleep(0.05)
    return True


def read_tail(path: Path, limit: int = _LOG_TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a log file as text."""
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode("utf-8", errors="replace")


class RunnerStoppingError(RuntimeError):
    """The gateway is shutting down; no new app run is started."""


class AppRunner:
    """Starts the app, enforces the timeout and lets a shutdown kill running apps."""

    def __init__(self, command: tuple[str, ...], models: Path, timeout_s: float, cwd: Path | None = None) -> None:
        self.command = command
        self.models = models
        self.timeout_s = timeout_s
        self.cwd = cwd
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def argv(self, in_dir: Path, out_dir: Path) -> list[str]:
        return [*self.command, "-i", str(in_dir), "-o", str(out_dir), "-m", str(self.models)]

    def run(self, in_dir: Path, out_dir: Path, log_path: Path,
            on_start: Callable[[int, int | None], None]) -> AppResult:
        """Run the app to completion (or timeout); ``on_start(pid, start_ticks)`` is called once it runs."""
        argv = self.argv(in_dir, out_dir)
        LOGGER.info("running app: %s", " ".join(argv))
        started = time.monotonic()
        with log_path.open("ab") as log:
            with self._lock:
                if self._stopping:
                    raise RunnerStoppingError("gateway is stopping; app not started")
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.cwd, start_new_session=True)
                self._running[proc.pid] = proc
            try:
                on_start(proc.pid, process_start_ticks(proc.pid))
                timed_out = False
                try:
                    code: int | None = proc.wait(timeout=self.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    LOGGER.error("app exceeded %.0f s; killing process group %d", self.timeout_s, proc.pid)
                    self._kill(proc)
                    code = None
            finally:
                with self._lock:
                    self._running.pop(proc.pid, None)
        if code is not None and code < 0:  # killed by a signal (e.g. our shutdown)
            code = None
        return AppResult(exit_code=code, duration_s=time.monotonic() - started, timed_out=timed_out,
                         log_tail=read_tail(log_path))

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already exited between the timeout and the kill: nothing left to kill
        proc.wait()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    def stop(self) -> None:
        """Kill every running app (graceful gateway shutdown); their jobs are re-run at next start."""
        with self._lock:
            self._stopping = True
            running = list(self._running.values())
        for proc in running:
            LOGGER.warning("shutdown: killing app process group %d", proc.pid)
            self._kill(proc)
