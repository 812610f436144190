"""The exporter as a real subprocess (`python -m exporter`) on a free port of 127.0.0.1.

Typical use::

    with ExporterProcess(config_path) as exporter:      # returns once /-/ready is 200
        status, body = http_get(exporter.url + "/metrics")
        ScrapeTarget("iot-connectivity-exporter", [exporter.address])
    # leaving the block sends SIGTERM; exporter.returncode holds the exit status

The process listens on 127.0.0.1:0; the port it got is read from its
`msg=listening address=127.0.0.1:PORT` log line (logfmt or JSON, on stderr).
Its stdout and stderr are collected by reader threads, so the pipes never fill.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

from tests.support.paths import REPO_ROOT
from tests.support.promstack import StartStop, http_get, wait_until

_LOGFMT_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def parse_logfmt(line: str) -> dict[str, str]:
    """Parse one logfmt line (`key=value key="quoted \\"value\\""`) into a dict.

    A line that is a JSON object (`--log.format json`) is parsed as JSON, with its
    values turned into strings, so callers can handle both formats alike.
    """
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            record = json.loads(stripped)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in record.items()}
    fields: dict[str, str] = {}
    for key, raw in _LOGFMT_PAIR.findall(stripped):
        quoted = raw.startswith('"') and raw.endswith('"') and len(raw) >= 2
        fields[key] = _unescape(raw[1:-1]) if quoted else raw
    return fields


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


class ExporterProcess(StartStop):
    """Start, wait for and stop the exporter process.

    config_file: the YAML config; it is passed as `--config.file`.
    extra_args: further flags, e.g. ["--log.level", "debug"].
    env: extra environment variables (merged over os.environ).
    wait_ready: wait for `/-/ready` (every source reported once) as well as for the
    listening line; turn off to test the not-ready phase.
    """

    def __init__(
        self,
        config_file: Path | str | None,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        cwd: Path | str = REPO_ROOT,
        start_timeout: float = 30.0,
        wait_ready: bool = True,
    ) -> None:
        self.argv = [python, "-m", "exporter"]
        if config_file is not None:
            self.argv += ["--config.file", str(config_file)]
        self.argv += ["--web.listen-address", "127.0.0.1:0", *extra_args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = Path(cwd)
        self.start_timeout = start_timeout
        self.wait_ready = wait_ready
        self.address = ""
        self.returncode: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._readers: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{self.address}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("exporter not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_lines(self) -> list[str]:
        """Every line the process wrote so far (stderr and stdout interleaved)."""
        with self._lines_lock:
            return list(self._lines)

    def log_records(self) -> list[dict[str, str]]:
        """The log lines parsed with parse_logfmt."""
        return [parse_logfmt(line) for line in self.log_lines()]

    def log_tail(self, lines: int = 40) -> str:
        tail = self.log_lines()[-lines:]
        return f"[exporter {self.argv[3:]} output, last {len(tail)} lines]\n" + "\n".join(tail)

    def _read(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            with self._lines_lock:
                self._lines.append(line.rstrip("\n"))

    def start(self) -> Self:
        self._proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        for stream in (self._proc.stdout, self._proc.stderr):
            reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
            reader.start()
            self._readers.append(reader)
        self.address = wait_until(
            self._listening_address,
            timeout=self.start_timeout,
            what="the exporter's 'listening' log line",
            diagnostics=self.log_tail,
        )
        if self.wait_ready:
            wait_until(
                self._ready,
                timeout=self.start_timeout,
                what=f"{self.url}/-/ready to answer 200",
                diagnostics=self.log_tail,
            )
        return self

    def _check_alive(self) -> None:
        if not self.running:
            raise RuntimeError(f"exporter exited early\n{self.log_tail()}")

    def _listening_address(self) -> str | None:
        for record in self.log_records():
            if record.get("msg") == "listening" and record.get("address"):
                return record["address"]
        self._check_alive()
        return None

    def _ready(self) -> bool | None:
        self._check_alive()
        try:
            status, _ = http_get(f"{self.url}/-/ready", timeout=2.0)
        except OSError:
            return None
        return True if status == 200 else None

    def send_signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait up to `timeout` s for the process to exit by itself; return its exit code.

        Sends no signal. Raises TimeoutError (with the log tail) if it is still running,
        leaving it for stop() to end.
        """
        proc = self._proc
        if proc is None:
            if self.returncode is None:
                raise RuntimeError("exporter not started")
            return self.returncode
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"exporter still running {timeout:g}s later\n{self.log_tail()}"
            ) from None
        self.returncode = code
        return code

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to `timeout` s (SIGKILL after that); return the exit code.

        The exit code is also kept in `returncode`; a test asserting a clean
        shutdown checks that it is 0 (it is -9 if SIGKILL was needed).
        """
        proc = self._proc
        if proc is None:
            return self.returncode
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self.returncode = proc.returncode
        for reader in self._readers:
            reader.join(timeout=5)
        self._proc = None
        return self.returncode
