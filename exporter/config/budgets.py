"""budgets: the requests per second each AWS operation may spend, within AWS's shared quotas."""

import difflib
from typing import Annotated, Any

from pydantic import BeforeValidator

from exporter.config.fields import number_in
from exporter.config.yamlfile import fail, mapping_or_empty, show
from exporter.names import POLL_OPERATION

# AWS raises the 350 TPS quota on request; beyond this a typo is likelier than a real quota.
MAX_REQUESTS_PER_SECOND = 10_000
# Requests per second each AWS operation may spend, well under AWS's quotas, which the
# account's devices and back-ends share: 25 per second for ListThingsInThingGroup, 10 for
# ListThings and ListThingGroups. AWS documents no rate for the fleet-index queries, so
# theirs leave room for other callers. GetThingConnectivityData's budget is
# poll.max_requests_per_second, against a quota of 350.
DEFAULT_BUDGETS: dict[str, float] = {
    "SearchIndex": 10.0,
    "ListThingsInThingGroup": 5.0,
    "ListThings": 2.0,
    "ListThingGroups": 2.0,
    "DescribeThingGroup": 2.0,
    "GetStatistics": 1.0,
    "GetBucketsAggregation": 1.0,
    # Lifecycle events (events.*). SQS has no practical quota on these; the budgets cap
    # what a runaway loop could cost. Each ReceiveMessage brings up to 10 events, so
    # 50/s is 500 events/s before the consumers wait; raise it for a busier queue.
    "ReceiveMessage": 50.0,
    "DeleteMessageBatch": 50.0,
    "GetQueueAttributes": 1.0,
}

RequestsPerSecond = Annotated[float, number_in(0, MAX_REQUESTS_PER_SECOND, low_open=True)]


def _operation(value: Any) -> str:
    if value == POLL_OPERATION:
        fail(f"{POLL_OPERATION}'s budget is poll.max_requests_per_second; set it there")
    if not isinstance(value, str) or value not in DEFAULT_BUDGETS:
        close = difflib.get_close_matches(str(value), DEFAULT_BUDGETS, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"one of {', '.join(DEFAULT_BUDGETS)}"
        fail(f"unknown AWS operation {show(value)} ({hint})")
    return value


Budgets = Annotated[
    dict[
        Annotated[str, BeforeValidator(_operation)],
        RequestsPerSecond,
    ],
    mapping_or_empty("AWS operations to requests per second"),
]
