"""Every AWS call the exporter makes: paced by its operation's budget, counted, retried."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from exporter.aws import error_code
from exporter.ratelimit import RateLimiter
from exporter.telemetry import ExporterMetrics

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


class Budgets:
    """One rate limiter per AWS operation, each at its own requests per second.

    AWS enforces a quota per operation (350/s for GetThingConnectivityData, 25/s for
    ListThingsInThingGroup, ...), so each operation paces on its own: a slow discovery
    never holds up polling, and a throttle on one operation never pauses another.
    """

    def __init__(
        self, rates: Mapping[str, float], *, wait: Callable[[float], bool] | None = None
    ) -> None:
        self._wait = wait
        self._limiters = {
            operation: RateLimiter(rate, wait=wait) for operation, rate in rates.items()
        }
        self.rates = dict(rates)

    def limiter(self, operation: str) -> RateLimiter:
        return self._limiters[operation]

    def updated(self, rates: Mapping[str, float]) -> Budgets:
        """Budgets for new rates that keep the limiter (and its pacing) of every unchanged one."""
        budgets = Budgets({}, wait=self._wait)
        for operation, rate in rates.items():
            kept = self._limiters.get(operation)
            if kept is not None and self.rates.get(operation) == rate:
                budgets._limiters[operation] = kept
            else:
                budgets._limiters[operation] = RateLimiter(rate, wait=self._wait)
        budgets.rates = dict(rates)
        return budgets


class AwsCalls:
    """Makes one AWS call at a time per caller, within the operation's budget.

    Only throttles are retried (up to max_retries), after the shared backoff pushed every
    later request of that operation back: botocore's own retries are off, since retrying
    behind the budget's back would add load exactly when AWS asks for less.
    """

    def __init__(
        self,
        client: Any,
        budgets: Budgets,
        metrics: ExporterMetrics,
        *,
        max_retries: int,
        stop: threading.Event,
    ) -> None:
        self._client = client
        self._budgets = budgets
        self._metrics = metrics
        self._max_retries = max_retries
        self._stop = stop
        self._methods = {api: method for method, api in client.meta.method_to_api_mapping.items()}

    @property
    def client(self) -> Any:
        return self._client

    @property
    def budgets(self) -> Budgets:
        return self._budgets

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """The operation's response; CallFailed for any failure, "Shutdown" on stop."""
        method = getattr(self._client, self._methods[operation])
        limiter = self._budgets.limiter(operation)
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
