"""events: lifecycle events from the SQS queue an IoT topic rule fills, for exact counts."""

import re
from typing import Annotated, Self

from pydantic import Field

from exporter.config.fields import Duration, Text, Url, integer_in, seconds_within
from exporter.config.yamlfile import StrictSection

# Consumer threads long-polling the queue, and the keys the dedupe set keeps.
DEFAULT_EVENT_CONSUMERS = 1
MAX_EVENT_CONSUMERS = 16
DEFAULT_DEDUPE_KEYS = 100_000
MAX_DEDUPE_KEYS = 10_000_000
# SQS's own bounds for a visibility timeout: 0 to 12 hours.
MAX_VISIBILITY_TIMEOUT = 43_200.0
# A ReceiveMessage long poll: SQS allows up to 20 s. The longest wait costs least; a shorter
# one lets a consumer that a reload closed end sooner (it finishes its current poll first).
DEFAULT_EVENT_WAIT_TIME = 20.0
MIN_EVENT_WAIT_TIME = 1.0
MAX_EVENT_WAIT_TIME = 20.0


class ClientIdSettings(StrictSection):
    """events.client_id: how a lifecycle event's client ID names a thing (by default, itself)."""

    prefix: Text = ""
    suffix: Text = ""


# An SQS queue URL names its region: https://sqs.REGION.amazonaws.com[.cn]/ACCOUNT/NAME, or
# the legacy https://REGION.queue.amazonaws.com/ACCOUNT/NAME.
_QUEUE_REGION = re.compile(
    r"https://(?:sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"|(?P<legacy>[a-z0-9-]+)\.queue\.amazonaws\.com)/"
)


def queue_region(url: str) -> str | None:
    """The region an AWS queue URL names; None for another endpoint (a local SQS)."""
    match = _QUEUE_REGION.match(url)
    if match is None:
        return None
    return match.group("region") or match.group("legacy")


# Written in events.queue_url, it stands for the shard's ordinal: each shard reads its own
# queue (the topic rule sends every event to each), while all run one config file.
SHARD_PLACEHOLDER = "{shard}"


class EventsSettings(StrictSection):
    """Lifecycle events from an SQS queue an IoT topic rule fills: exact disconnect counts."""

    queue_url: Url
    endpoint_url: Url | None = None
    consumers: Annotated[int, integer_in(1, MAX_EVENT_CONSUMERS)] = DEFAULT_EVENT_CONSUMERS
    client_id: ClientIdSettings = Field(default_factory=ClientIdSettings)
    # None keeps the queue's own visibility timeout.
    visibility_timeout: (
        Annotated[Duration, seconds_within(maximum=MAX_VISIBILITY_TIMEOUT)] | None
    ) = None
    dedupe_keys: Annotated[int, integer_in(1_000, MAX_DEDUPE_KEYS)] = DEFAULT_DEDUPE_KEYS
    wait_time: Annotated[Duration, seconds_within(MIN_EVENT_WAIT_TIME, MAX_EVENT_WAIT_TIME)] = (
        DEFAULT_EVENT_WAIT_TIME
    )

    @property
    def region(self) -> str | None:
        """The queue's region, from its URL: the SQS client's, whatever aws.region says."""
        return queue_region(self.queue_url)

    @property
    def per_shard(self) -> bool:
        """Whether the queue URL names a queue per shard (holds {shard})."""
        return SHARD_PLACEHOLDER in self.queue_url

    def for_shard(self, ordinal: int) -> Self:
        """These settings with the shard's own queue ({shard} replaced by its ordinal)."""
        if not self.per_shard:
            return self
        url = self.queue_url.replace(SHARD_PLACEHOLDER, str(ordinal))
        return self.model_copy(update={"queue_url": url})
