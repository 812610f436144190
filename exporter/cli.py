"""Command line: Prometheus-style flags, start-up checks, signals, and the main loop."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from types import FrameType

from prometheus_client import disable_created_metrics

from exporter import __version__
from exporter.app import Exporter, SetupError
from exporter.aws.clients import make_iot_client, make_sqs_client
from exporter.config import Config, load_config
from exporter.config.durations import parse_go_duration
from exporter.config.yamlfile import ConfigError
from exporter.fleet.shards import POD_NAME_ENV, SHARD_ENV, Shard, shard_from
from exporter.logs import FORMATS, LEVELS, setup_logging
from exporter.web.config_file import WebSecurity, load_web_security
from exporter.web.limits import DEFAULT_MAX_CONNECTIONS, HttpLimits
from exporter.web.server import Endpoints, ExporterHTTPServer, ReloadResult

log = logging.getLogger(__name__)

DEFAULT_PORT = 9689
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"
CONFIG_ENV = "IOT_EXPORTER_CONFIG_FILE"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iot-connectivity-exporter",
        description="Prometheus exporter for the connectivity of AWS IoT things.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        default=os.environ.get(CONFIG_ENV, "config.yaml"),
        help=f"YAML configuration file (environment: {CONFIG_ENV})",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration file, print every error, and exit",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN_ADDRESS,
        help="address to listen on for HTTP: [host]:port (port 0 picks a free port)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="path under which to expose metrics",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default="",
        help="web configuration file in the Prometheus exporter-toolkit format: TLS, basic"
        " auth and response headers (see README); empty serves plain HTTP without auth."
        " Re-read on SIGHUP and POST /-/reload",
    )
    parser.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=_positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="most HTTP connections open at once; beyond it the keep-alive connection idle"
        " the longest is closed to make room, or else the new one is answered 503 (TLS:"
        " closed) at once. Idle and slow connections cost a socket each, not a thread",
    )
    parser.add_argument(
        "--web.read-header-timeout",
        dest="read_header_timeout",
        type=_duration,
        default="10s",
        help="time a client has to send a whole request head (with the TLS handshake, on a"
        " new connection) before it is closed",
    )
    parser.add_argument(
        "--web.idle-timeout",
        dest="idle_timeout",
        type=_duration,
        default="2m",
        help="how long a keep-alive connection may wait for its next request",
    )
    parser.add_argument(
        "--shard",
        type=_ordinal,
        default=None,
        help="this process's shard, from 0, when --total-shards split the fleet (default:"
        f" ${SHARD_ENV}, else the ordinal ending ${POD_NAME_ENV}, else 0)",
    )
    parser.add_argument(
        "--total-shards",
        dest="total_shards",
        type=_positive_int,
        default=1,
        help="how many processes split the fleet, each owning a stable share (1: this one"
        " owns every thing)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=list(LEVELS), default="info")
    parser.add_argument("--log.format", dest="log_format", choices=FORMATS, default="logfmt")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="poll a simulated fleet started in-process; needs no AWS account or config file",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {text!r}")
    return int(text)


def _ordinal(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return int(text)


def _duration(text: str) -> float:
    try:
        seconds = parse_go_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return seconds


def http_limits(args: argparse.Namespace) -> HttpLimits:
    return HttpLimits(
        read_header_timeout=args.read_header_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
    )


def parse_listen_address(text: str) -> tuple[str, int]:
    """':9689' -> ('', 9689); '127.0.0.1:0' -> ('127.0.0.1', 0); '[::1]:9689' -> ('::1', 9689)."""
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"--web.listen-address: expected [host]:port, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    # *_created samples would double the exporter's own series for no operator value.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        address, shard = _flags(args)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    if args.config_check:
        return check_config(args.config_file, args.web_config_file)
    # Signals are wired before the slow part (assuming a role can wait on STS), so an
    # early SIGTERM still ends in a clean exit 0 and an early SIGHUP is not fatal.
    signals = Signals.install()
    with ExitStack() as stack:
        try:
            # First: a bad web config fails at once, before any wait on AWS credentials.
            security = load_web_security(args.web_config_file) if args.web_config_file else None
            exporter = build_exporter(args, stack, shard)
        except (ConfigError, SetupError) as error:
            print(error, file=sys.stderr)
            return 1
        if signals.stopping.is_set():
            return 0
        signals.reload = exporter.reload
        limits = http_limits(args)
        return serve(exporter, address, args.telemetry_path, signals, security, limits=limits)


def _flags(args: argparse.Namespace) -> tuple[tuple[str, int], Shard]:
    """The listen address and the shard; ValueError names the flag that is wrong."""
    if not args.telemetry_path.startswith("/") or args.telemetry_path.startswith("/-/"):
        raise ValueError(
            "--web.telemetry-path: must start with / and not be under /-/,"
            f" got {args.telemetry_path!r}"
        )
    address = parse_listen_address(args.listen_address)
    return address, shard_from(args.shard, args.total_shards, os.environ)


class Signals:
    """SIGTERM/SIGINT ask for a stop; SIGHUP reloads once an exporter is running."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.reload: Callable[[], ReloadResult] | None = None

    @classmethod
    def install(cls) -> Signals:
        signals = cls()
        signal.signal(signal.SIGTERM, signals.on_stop)
        signal.signal(signal.SIGINT, signals.on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signals.on_reload)
        return signals

    def on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def on_reload(self, signum: int, frame: FrameType | None) -> None:
        if self.reload is None:
            log.warning("SIGHUP during start-up ignored; the config is being loaded now")
            return
        # Reload off the signal handler's frame so a slow config read never blocks it.
        threading.Thread(target=self.reload, name="reload", daemon=True).start()


def check_config(path: str, web_config_path: str = "") -> int:
    code = 0
    try:
        config = load_config(path)
        print(f"config OK: {path}: {describe_sources(config)}")
        for note in config.notes():
            print(f"{path}: warning: {note}")
    except ConfigError as error:
        print(error, file=sys.stderr)
        code = 1
    if web_config_path:
        try:
            security = load_web_security(web_config_path)
            print(f"web config OK: {web_config_path}: {_describe(security)}")
            for warning in security.warnings:
                print(f"{web_config_path}: warning: {warning}")
        except ConfigError as error:
            print(error, file=sys.stderr)
            code = 1
    return code


def describe_sources(config: Config) -> str:
    """What a config watches, in a few words: "3 things, 2 discovery sources (live mode)"."""
    counts = (
        (len(config.things), "thing", "things"),
        (len(config.discovery.sources), "discovery source", "discovery sources"),
        (len(config.aggregates.queries), "aggregate query", "aggregate queries"),
    )
    parts = [f"{n} {one if n == 1 else many}" for n, one, many in counts if n]
    return ", ".join(parts) + f" ({config.poll.mode} mode)"


def _describe(security: WebSecurity) -> str:
    tls = f"TLS ({security.client_auth_type})" if security.tls else "plain HTTP"
    text = f"{tls}, basic auth {'on' if security.auth else 'off'}"
    rate = security.describe().get("rate_limit")
    return f"{text}, rate limit {rate}" if rate else text


def _log_warnings(security: WebSecurity) -> None:
    for warning in security.warnings:
        log.warning("web config", extra={"file": security.path, "warning": warning})


def reload_web_config(server: ExporterHTTPServer, path: str) -> ReloadResult:
    """Re-read the web config; on any error the server keeps the one it has."""
    try:
        security = load_web_security(path)
    except ConfigError as error:
        return _web_reload_failed(str(error))
    if (security.tls is None) != (server.security is None or server.security.tls is None):
        return _web_reload_failed(
            f"{path}: turning TLS on or off needs a restart; keeping the running web config"
        )
    server.security = security.keeping_state_of(server.security)
    _log_warnings(security)
    log.info("web config reloaded", extra=security.describe())
    return ReloadResult(True, f"web config reloaded: {_describe(security)}")


def _web_reload_failed(message: str) -> ReloadResult:
    log.error("web config reload failed; keeping the running one", extra={"error": message})
    return ReloadResult(False, message)


def build_exporter(args: argparse.Namespace, stack: ExitStack, shard: Shard) -> Exporter:
    if args.demo:
        # Imported here so a production exporter never loads the simulator.
        from exporter.demo import start_demo  # noqa: PLC0415

        demo = stack.enter_context(start_demo())
        return Exporter(
            lambda: demo.config,
            lambda config: make_iot_client(
                config.aws, config.poll.concurrency, static_credentials=demo.credentials
            ),
            sqs_client_factory=lambda config: (
                make_sqs_client(config.aws, config.events, static_credentials=demo.credentials)
                if config.events is not None
                else None
            ),
            shard=shard,
        )
    path = args.config_file
    return Exporter(
        lambda: load_config(path),
        lambda config: make_iot_client(config.aws, config.poll.concurrency),
        shard=shard,
    )


def serve(
    exporter: Exporter,
    address: tuple[str, int],
    telemetry_path: str,
    signals: Signals,
    security: WebSecurity | None = None,
    *,
    limits: HttpLimits | None = None,
) -> int:
    def reload() -> ReloadResult:
        results = [exporter.reload()]
        if security is not None:
            results.append(reload_web_config(server, security.path))
        return ReloadResult(all(r.ok for r in results), "\n".join(r.message for r in results))

    endpoints = Endpoints(
        telemetry_path=telemetry_path,
        payload=exporter.payload,
        ready=exporter.ready,
        reload=reload,
    )
    try:
        server = ExporterHTTPServer(address, endpoints, security, limits)
    except OSError as error:
        log.error(
            "cannot listen", extra={"address": f"{address[0]}:{address[1]}", "error": str(error)}
        )
        return 1
    signals.reload = reload
    if security is not None:
        _log_warnings(security)
    server.serve_in_thread()
    web = security.describe() if security is not None else {"tls": False, "basic_auth": False}
    log.info(
        "listening", extra={"address": server.address, "telemetry_path": telemetry_path, **web}
    )
    exporter.start()
    while not signals.stopping.wait(1.0):
        pass
    log.info("shutting down")
    exporter.stop()
    server.shutdown()
    server.server_close()
    return 0
