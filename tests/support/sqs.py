"""moto's server as a real SQS endpoint on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotocoreConfig

from tests.support.promstack import _ManagedProcess

REGION = "eu-west-1"
ACCESS_KEY, SECRET_KEY = "AKIDEXPORTERTEST0001", "test"


class MotoServer(_ManagedProcess):
    """`moto_server -H 127.0.0.1 -p PORT`: SQS over HTTP with long polling and redelivery."""

    start_timeout = 30.0

    def __init__(self) -> None:
        super().__init__("moto")
        self._client: Any = None

    def _argv(self, port: int) -> list[str]:
        server = Path(sys.executable).with_name("moto_server")
        return [str(server), "-H", "127.0.0.1", "-p", str(port)]

    def start(self) -> MotoServer:
        self.port = self._start_on_free_port(self._argv, "/moto-api/", self.start_timeout)
        return self

    def client(self) -> Any:
        """A plain boto3 SQS client for the test's own calls (sending, counting).

        One per server: depth() is polled many times a test, and each new client would
        load botocore's SQS model again (about 0.1 s of CPU).
        """
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        return boto3.client(
            "sqs",
            region_name=REGION,
            endpoint_url=self.url,
            config=BotocoreConfig(retries={"max_attempts": 2}),
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def queue(self, name: str, *, visibility_timeout: int = 30) -> str:
        """A new standard queue's URL."""
        response = self.client().create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)}
        )
        return str(response["QueueUrl"])

    def depth(self, queue_url: str) -> tuple[int, int]:
        """(visible, in flight) messages on the queue."""
        attributes = self.client().get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server
