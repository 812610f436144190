"""Every AWS call the exporter makes: paced by its operation's budget, counted, retried."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import Counter

from exporter.aws.clients import error_code
from exporter.aws.pacing import RateLimiters

log = logging.getLogger(__name__)

THROTTLE_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "RequestThrottled", "Throttling"}
)


class CallFailed(Exception):  # noqa: N818 - reads as "the call failed", like botocore's ClientError
    """An AWS call that did not succeed, with the short code metrics and logs show."""

    def __init__(self, operation: str, code: str, error: BaseException | None = None) -> None:
        self.operation = operation
        self.code = code
        self.error = error
        detail = f": {error}" if error is not None and str(error) else ""
        super().__init__(f"{operation} failed: {code}{detail}")


class CallCounters(Protocol):
    """Where calls are counted: the exporter's iot_exporter_api_* families."""

    @property
    def api_requests(self) -> Counter: ...

    @property
    def api_errors(self) -> Counter: ...


class AwsCalls:
    """Makes one AWS call at a time per caller, within the operation's budget.

    Only throttles are retried (up to max_retries), after the shared backoff pushed every
    later request of that operation back: botocore's own retries are off, since retrying
    behind the budget's back would add load exactly when AWS asks for less.
    """

    def __init__(
        self,
        client: Any,
        limiters: RateLimiters,
        metrics: CallCounters,
        *,
        max_retries: int,
        stop: threading.Event,
    ) -> None:
        self._client = client
        self._limiters = limiters
        self._metrics = metrics
        self._max_retries = max_retries
        self._stop = stop
        self._methods = {api: method for method, api in client.meta.method_to_api_mapping.items()}

    @property
    def client(self) -> Any:
        return self._client

    @property
    def limiters(self) -> RateLimiters:
        return self._limiters

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """The operation's response; CallFailed for any failure, "Shutdown" on stop."""
        method = getattr(self._client, self._methods[operation])
        limiter = self._limiters.limiter(operation)
        requests = self._metrics.api_requests.labels(operation)
        attempt = 0
        while True:
            if self._stop.is_set() or not limiter.acquire():
                raise CallFailed(operation, "Shutdown")
            requests.inc()
            try:
                response: dict[str, Any] = method(**params)
            except Exception as error:  # whatever it is, the caller gets one kind of failure
                code = error_code(error)
                self._metrics.api_errors.labels(operation, code).inc()
                if code in THROTTLE_CODES:
                    pause = limiter.throttled()
                    log.debug(
                        "throttled",
                        extra={"operation": operation, "pause_seconds": round(pause, 3)},
                    )
                    if attempt < self._max_retries:
                        attempt += 1
                        continue
                raise CallFailed(operation, code, error) from error
            limiter.succeeded()
            return response

    def pages(self, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Each page of a paginated operation in turn, following nextToken; CallFailed as call.

        A token seen twice would loop forever on a faulty answer: it ends the paging with
        an InvalidResponse failure instead.
        """
        seen: set[str] = set()
        while True:
            page = self.call(operation, **params)
            yield page
            token = page.get("nextToken")
            if not token:
                return
            if not isinstance(token, str) or token in seen:
                raise self.refused(operation, "InvalidResponse")
            seen.add(token)
            params = {**params, "nextToken": token}

    def refused(self, operation: str, code: str) -> CallFailed:
        """Count a 200 whose body makes no sense as the failed call it is."""
        self._metrics.api_errors.labels(operation, code).inc()
        return CallFailed(operation, code)
