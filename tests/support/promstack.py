"""Real Prometheus and Alertmanager processes, and a webhook receiver, for tests on 127.0.0.1.

Typical use (every class is a context manager; leaving it stops the process and
removes its temporary directory, even when the test fails)::

    with WebhookReceiver() as hook, Alertmanager(hook.url) as am, Prometheus(
        [ScrapeTarget("iot-connectivity-exporter", [exporter.address])],
        rule_files=[Path("monitoring/alerts.yaml")],
        alertmanager_url=am.url,
    ) as prom:
        prom.wait_for('up{job="iot-connectivity-exporter"} == 1')
        alert = hook.wait_for_alert(lambda a: a["labels"]["alertname"] == "X")

Needs the `prometheus` and `prometheus-alertmanager` binaries (Debian packages of
the same names) on PATH. Scrape and evaluation intervals default to 1 s; the
first scrape still lands a few seconds after start, so waits default to 30 s.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import yaml

T = TypeVar("T")

Result = dict[str, Any]
"""One element of a Prometheus instant-query result: {"metric": {...}, "value": [ts, "v"]}."""

_LOOPBACK = "127.0.0.1"
_START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something other than None, and return that.

    Raises TimeoutError naming `what` (plus `diagnostics()`, e.g. a log tail)
    once `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{diagnostics()}" if diagnostics else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def scalar(results: list[dict[str, object]]) -> float:
    """The one value of an instant query's result (a list of one vector sample)."""
    assert len(results) == 1, results
    value = results[0]["value"]
    assert isinstance(value, list)
    return float(value[1])


def http_get(url: str, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `url`; return (status, body), also for 4xx/5xx answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_post(url: str, body: bytes = b"", *, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST `body` to `url`; return (status, body), also for 4xx/5xx answers."""
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _http_ok(url: str) -> bool | None:
    """True if `url` answers 200 now; None (not yet) if it refuses or answers otherwise."""
    try:
        status, _ = http_get(url, timeout=2.0)
    except OSError:
        return None
    return True if status == 200 else None


class StartStop(ABC):
    """The context-manager protocol for anything with start() and stop().

    Leaving the block stops it; a start that fails half-way is stopped too, so no
    process or thread outlives a failed test.
    """

    @abstractmethod
    def start(self) -> Self:
        """Start, and return self once usable."""

    @abstractmethod
    def stop(self) -> object:
        """Stop; safe to call twice and after a failed start."""

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _ManagedProcess(StartStop):
    """A child process with its output in a log file inside a private temp directory."""

    start_timeout: float
    port: int

    def __init__(self, name: str) -> None:
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.log_path = self.workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def _argv(self, port: int) -> list[str]:
        """The command line to run, listening on `port`."""

    @property
    def address(self) -> str:
        """host:port, e.g. for a ScrapeTarget."""
        return f"{_LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> Self:
        self.port = self._start_on_free_port(self._argv, "/-/ready", self.start_timeout)
        return self

    def stop(self) -> None:
        self._cleanup()

    def _spawn(self, argv: Sequence[str]) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's combined stdout and stderr."""
        if not self.log_path.exists():
            return f"[{self.name}: no log]"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"[{self.name} log, last {len(text)} lines]\n" + "\n".join(text)

    def _wait_ready(self, url: str, timeout: float) -> bool:
        """Wait for `url` to answer 200; False if the process exited first."""

        def probe() -> bool | None:
            if not self.running:
                return False
            return _http_ok(url)

        return wait_until(
            probe, timeout=timeout, what=f"{self.name} at {url}", diagnostics=self.log_tail
        )

    def _terminate(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)

    def _cleanup(self) -> None:
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _start_on_free_port(
        self, argv_for: Callable[[int], Sequence[str]], ready_path: str, timeout: float
    ) -> int:
        """Start with a fresh free port until the process comes up; return the port."""
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            self._spawn(argv_for(port))
            if self._wait_ready(f"http://{_LOOPBACK}:{port}{ready_path}", timeout):
                return port
            self._terminate()
            if "address already in use" not in self.log_tail(400):
                break
        self._terminate()
        raise RuntimeError(f"{self.name} did not start\n{self.log_tail()}")


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape job: its `job` name and the host:port addresses it scrapes."""

    job: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        static: dict[str, Any] = {"targets": list(self.targets)}
        if self.labels:
            static["labels"] = dict(self.labels)
        return {"job_name": self.job, "metrics_path": self.metrics_path, "static_configs": [static]}


class PromQLError(RuntimeError):
    """Prometheus rejected a query (the message is Prometheus's own)."""


class Prometheus(_ManagedProcess):
    """A real Prometheus server on 127.0.0.1 with a temporary TSDB.

    targets: the scrape jobs. scrape_self adds a job "prometheus" scraping this
    server itself (useful to check the stack without any exporter).
    rule_files: rule files to load, as given (alerts and recording rules).
    alertmanager_url: where to send alerts, e.g. Alertmanager(...).url; alerts are
    then re-sent every evaluation_interval instead of every minute.
    """

    def __init__(
        self,
        targets: Iterable[ScrapeTarget] = (),
        *,
        scrape_self: bool = False,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        rule_files: Iterable[Path | str] = (),
        alertmanager_url: str | None = None,
        external_labels: Mapping[str, str] | None = None,
        binary: str = "prometheus",
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__("prometheus")
        self.targets = list(targets)
        self.scrape_self = scrape_self
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.alertmanager_url = alertmanager_url
        self.external_labels = dict(external_labels or {})
        self.binary = binary
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.port = 0

    def config(self, port: int) -> dict[str, Any]:
        """The prometheus.yml this server runs with, for a given listen port."""
        jobs = [t.to_config() for t in self.targets]
        if self.scrape_self:
            jobs.append(ScrapeTarget("prometheus", [f"{_LOOPBACK}:{port}"]).to_config())
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": jobs,
            "rule_files": [str(p) for p in self.rule_files],
        }
        if self.external_labels:
            cfg["global"]["external_labels"] = self.external_labels
        if self.alertmanager_url:
            am = urllib.parse.urlsplit(self.alertmanager_url)
            cfg["alerting"] = {
                "alertmanagers": [
                    {
                        "scheme": am.scheme or "http",
                        "path_prefix": am.path or "/",
                        "static_configs": [{"targets": [am.netloc]}],
                    }
                ]
            }
        return cfg

    def _argv(self, port: int) -> list[str]:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(port), sort_keys=False))
        argv = [
            self.binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={_LOOPBACK}:{port}",
            "--storage.tsdb.retention.time=1d",
        ]
        if self.alertmanager_url:
            argv.append(f"--rules.alert.resend-delay={self.evaluation_interval}")
        return argv + self.extra_args

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET /api/v1/<path> and return its "data"; PromQLError if Prometheus says error."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http_get(f"{self.url}/api/v1/{path}{query}", timeout=10.0)
        try:
            answer = json.loads(body)
        except ValueError as err:
            raise PromQLError(f"HTTP {status} from /api/v1/{path}: {body[:200]!r}") from err
        if answer.get("status") != "success":
            raise PromQLError(f"{answer.get('errorType')}: {answer.get('error')} ({path} {params})")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[Result]:
        """Run an instant query; return its samples as result dicts.

        A scalar or string result comes back as one element with an empty
        "metric", so callers can treat every result as a list.
        """
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[Result] = data["result"]
        return result

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Result]], bool] = bool,
        *,
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[Result]:
        """Poll `expr` until `predicate(result)` holds (default: non-empty); return the result."""
        last: list[list[Result]] = [[]]

        def probe() -> list[Result] | None:
            last[0] = self.query(expr)
            return last[0] if predicate(last[0]) else None

        return wait_until(
            probe,
            timeout=timeout,
            interval=interval,
            what=f"query {expr!r} to satisfy the predicate",
            diagnostics=lambda: f"last result: {last[0]!r}\n{self.log_tail()}",
        )

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        """Values of `label`, optionally only on series matching the selector `match`."""
        params = {"match[]": match} if match else None
        values: list[str] = self.api(f"label/{urllib.parse.quote(label)}/values", params)
        return values

    def alerts(self) -> list[dict[str, Any]]:
        """Active (pending and firing) alerts."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups, with each rule's health and last error."""
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return targets


class Alertmanager(_ManagedProcess):
    """A real, non-clustered Alertmanager on 127.0.0.1 routing every alert to one webhook.

    Grouping waits are short (1 s) so a test sees a notification within seconds
    of Prometheus sending the alert. group_by defaults to every label ("...").
    """

    def __init__(
        self,
        webhook_url: str,
        *,
        group_by: Sequence[str] = ("...",),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        send_resolved: bool = True,
        binary: str = "prometheus-alertmanager",
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__("alertmanager")
        self.webhook_url = webhook_url
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.send_resolved = send_resolved
        self.binary = binary
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.port = 0

    def config(self) -> dict[str, Any]:
        """The alertmanager.yml this server runs with."""
        return {
            "route": {
                "receiver": "webhook",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [
                {
                    "name": "webhook",
                    "webhook_configs": [
                        {"url": self.webhook_url, "send_resolved": self.send_resolved}
                    ],
                }
            ],
        }

    def _argv(self, port: int) -> list[str]:
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return [
            self.binary,
            f"--config.file={config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={_LOOPBACK}:{port}",
            "--cluster.listen-address=",  # empty: no gossip, no extra port
            *self.extra_args,
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now (API v2)."""
        _, body = http_get(f"{self.url}/api/v2/alerts", timeout=10.0)
        alerts: list[dict[str, Any]] = json.loads(body)
        return alerts


class WebhookReceiver(StartStop):
    """An HTTP server on 127.0.0.1 that records Alertmanager webhook notifications.

    `url` is the address to give Alertmanager. `payloads()` returns every POSTed
    JSON body; `alerts()` every alert in them, in arrival order; `wait_for_alert`
    blocks until an alert matches (no sleeping: it waits on a condition).
    """

    def __init__(self, path: str = "/alerts") -> None:
        self.path = path
        self._payloads: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer((_LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver._record(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: pytest shows the test's own output, not access logs."""

        return Handler

    def _record(self, payload: dict[str, Any]) -> None:
        with self._changed:
            self._payloads.append(payload)
            self._changed.notify_all()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def payloads(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._payloads)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification: {"status", "labels", "annotations", ...}."""
        return [alert for payload in self.payloads() for alert in payload.get("alerts", [])]

    def wait_for_alert(
        self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Block until a received alert satisfies `predicate`; return it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for payload in self._payloads:
                    for alert in payload.get("alerts", []):
                        if predicate(alert):
                            return dict(alert)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    received = [
                        (a.get("status"), a.get("labels"))
                        for p in self._payloads
                        for a in p.get("alerts", [])
                    ]
                    raise TimeoutError(
                        f"no matching alert within {timeout:g}s; received: {received!r}"
                    )
                self._changed.wait(remaining)
