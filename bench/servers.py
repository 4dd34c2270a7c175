"""gunicorn on a loopback port, started and stopped by a benchmark (one class for every bench)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """``gunicorn <app_path>`` with the given options; stderr to ``log`` (tracebacks included) or kept."""

    def __init__(self, app_path: str, env: dict[str, str], options: list[str], log: Path | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = open(log, "wb") if log is not None else None
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self.process = subprocess.Popen(
            [gunicorn, *options, "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", app_path],
            cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
            stderr=self._log_file if self._log_file is not None else subprocess.PIPE,
        )

    def _errors(self) -> str:
        if self.log is not None:
            self._log_file.flush()
            return self.log.read_text(errors="replace")[-2000:]
        return self.process.stderr.read().decode(errors="replace")[-2000:]

    def wait(self, path: str, timeout: float = 60) -> None:
        """Until ``GET path`` answers at all (the workers have imported the app)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited: " + self._errors())
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", path)
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()
