"""What every launcher here shares: a child process whose output is kept and scanned for the line
that says it is ready, and a poll until a condition holds.

The inference server (server.py), the SFU, the WHIP publisher (sfu.py), the demo and its
services start through `LoggedProcess`; OBS (obs.py) is awaited through obs-websocket instead,
because its log goes to a file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.005, what: str = "condition") -> T:
    """Polls ``predicate`` until it returns something truthy, and returns that; raises TimeoutError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class LoggedProcess:
    """A child whose output lines are kept (and echoed with ``echo``) and scanned for ``ready``, a
    regular expression.  With ``own_session`` it runs in a session of its own and is stopped with
    everything it started; without, it stays in the caller's, so that a Ctrl-C reaches it too."""

    def __init__(self, name: str, cmd: list[str], ready: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None, echo: Callable[[str], None] | None = None, own_session: bool = True):
        self.name, self.lines = name, []
        self.proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=own_session)
        self._own_session = own_session
        self._ready = threading.Event()
        self._pattern = re.compile(ready)
        self._echo = echo
        self._reader = threading.Thread(target=self._pump, daemon=True, name=f"{name}-log")
        self._reader.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip())
            if self._pattern.search(line):
                self._ready.set()
            if self._echo is not None:
                self._echo(f"[{self.name}] {line.rstrip()}")

    def wait_ready(self, timeout: float) -> None:
        """Returns once the ready line was printed; raises RuntimeError with the last lines when the
        process exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.lines[-30:])
                raise RuntimeError(f"{self.name} did not start:\n{tail}")

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> str:
        """``sig`` (to the whole session when it has its own), SIGKILL after ``timeout``; returns
        everything the process printed."""
        if self.proc.poll() is None:
            self._signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._reader.join(5)  # the last lines, up to the end of the pipe
        return "\n".join(self.lines)

    def _signal(self, sig: int) -> None:
        if self._own_session:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def log_matches(self, pattern: str) -> list[str]:
        return [line for line in self.lines if re.search(pattern, line)]
