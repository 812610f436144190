"""Malformed requests get AWS-style errors, never a traceback or a dead server; keep-alive."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from mypy_boto3_iot import IoTClient

from iot_simulator import ManualClock, Simulator

ClientFactory = Callable[..., IoTClient]
Reply = tuple[int, dict[str, str], bytes]


def signed(sim: Simulator, method: str, path: str, body: bytes = b"") -> Reply:
    """Send a correctly signed request with an arbitrary path and body."""
    request = AWSRequest(method=method, url=sim.url + path, data=body)
    SigV4Auth(Credentials("AKID", "secret"), "iot", "eu-west-1").add_auth(request)
    conn = http.client.HTTPConnection(urlsplit(sim.url).netloc, timeout=5)
    conn.request(method, path, body=body, headers=dict(request.headers.items()))
    response = conn.getresponse()
    reply = response.status, dict(response.getheaders()), response.read()
    conn.close()
    return reply


def wire(sim: Simulator, data: bytes) -> bytes:
    """Send raw bytes; return everything the server answers before it closes."""
    with socket.create_connection((sim.config.host, sim.port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def error_code(reply: Reply) -> tuple[int, str]:
    status, headers, body = reply
    assert "message" in json.loads(body)
    return status, headers["x-amzn-ErrorType"]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("POST", "/indices/search", b"{not json", (400, "SerializationException")),
        ("POST", "/indices/search", b"[1, 2]", (400, "SerializationException")),
        ("POST", "/indices/search", b"\xff\xfe", (400, "SerializationException")),
        ("POST", "/indices/search", b'{"queryString": 5}', (400, "InvalidRequestException")),
        ("POST", "/indices/search", b"{}", (400, "InvalidRequestException")),
        ("POST", "/indices/search", b'{"queryString": "x:"}', (400, "InvalidQueryException")),
        (
            "POST",
            "/indices/search",
            b'{"queryString": "thingName:*", "maxResults": "9"}',
            (400, "InvalidRequestException"),
        ),
        ("POST", "/indices/statistics", b"{not json", (400, "SerializationException")),
        ("POST", "/indices/statistics", b"{}", (400, "InvalidRequestException")),
        (
            "POST",
            "/indices/statistics",
            b'{"queryString": "*", "aggregationField": 5}',
            (400, "InvalidRequestException"),
        ),
        (
            "POST",
            "/indices/statistics",
            b'{"queryString": "*", "aggregationField": ""}',
            (400, "InvalidRequestException"),
        ),
        (
            "POST",
            "/indices/buckets",
            b'{"queryString": "*", "aggregationField": "thingName"}',
            (400, "InvalidRequestException"),
        ),
        (
            "POST",
            "/indices/buckets",
            b'{"queryString": "*", "aggregationField": "thingName", '
            b'"bucketsAggregationType": "terms"}',
            (400, "InvalidRequestException"),
        ),
        (
            "POST",
            "/indices/buckets",
            b'{"queryString": "*", "aggregationField": "thingName", '
            b'"bucketsAggregationType": {"termsAggregation": {"maxBuckets": "9"}}}',
            (400, "InvalidRequestException"),
        ),
        (
            "POST",
            "/indices/buckets",
            b'{"queryString": "*", "aggregationField": "thingName", '
            b'"bucketsAggregationType": {"termsAggregation": null}}',
            (200, ""),
        ),
        ("GET", "/thing-groups/%00", b"", (400, "InvalidRequestException")),
        ("GET", "/thing-groups/" + "g" * 129, b"", (400, "InvalidRequestException")),
        ("DELETE", "/thing-groups/group-1", b"", (405, "UnknownOperationException")),
        ("GET", "/nope", b"", (404, "UnknownOperationException")),
        ("GET", "/", b"", (404, "UnknownOperationException")),
        ("DELETE", "/things/x/connectivity-data", b"", (405, "UnknownOperationException")),
        ("GET", "/things?maxResults=abc", b"", (400, "InvalidRequestException")),
        ("GET", "/things?maxResults=%zz", b"", (400, "InvalidRequestException")),
        ("GET", "/things?maxResults=9999", b"", (400, "InvalidRequestException")),
        (
            "GET",
            "/thing-groups/group-1/things?recursive=maybe",
            b"",
            (400, "InvalidRequestException"),
        ),
        ("GET", "/things?nextToken=%%%", b"", (400, "InvalidRequestException")),
        ("POST", "/things/%00/connectivity-data", b"", (400, "InvalidRequestException")),
        ("POST", "/things/%E2%9C%93/connectivity-data", b"", (400, "InvalidRequestException")),
        ("POST", "/things/%ZZ/connectivity-data", b"", (400, "InvalidRequestException")),
        (
            "POST",
            "/things/" + "a" * 129 + "/connectivity-data",
            b"",
            (400, "InvalidRequestException"),
        ),
        ("POST", "/things/thing-00001/connectivity-data", b"{bad", (400, "SerializationException")),
        (
            "POST",
            "/things/thing-00001/connectivity-data",
            b'{"includeSocketInformation": "yes"}',
            (400, "InvalidRequestException"),
        ),
    ],
)
def test_malformed_requests_get_aws_errors(
    sim: Simulator, method: str, path: str, body: bytes, expected: tuple[int, str]
) -> None:
    reply = signed(sim, method, path, body)
    if expected[0] == 200:  # odd but valid
        assert reply[0] == 200, reply
        return
    assert error_code(reply) == expected


def test_odd_but_valid_query_strings(sim: Simulator) -> None:
    status, _, body = signed(sim, "GET", "/things?&&=&maxResults=2&unknown=1")
    assert status == 200
    assert len(json.loads(body)["things"]) == 2


def test_huge_body_is_refused_and_the_connection_closed(sim: Simulator) -> None:
    head = b"POST /indices/search HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
    answer = wire(sim, head + b"{" * 1000)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"x-amzn-ErrorType: RequestEntityTooLargeException" in answer
    assert b"Connection: close" in answer


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/9.9\r\n\r\n", b"505"),
        (b"\x00\x01\x02\x03\r\n\r\n", b"400"),
        (b"GET /things HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"POST /indices/search HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
        (b"POST /indices/search HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400"),
        (b"POST /indices/search HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
        (b"BREW /coffee HTTP/1.1\r\n\r\n", b"501"),
    ],
)
def test_broken_http_gets_json_errors(sim: Simulator, data: bytes, status: bytes) -> None:
    answer = wire(sim, data)
    assert answer.split(b" ", 2)[1] == status
    assert b"x-amzn-ErrorType: " in answer
    assert answer.endswith(b"}")


def test_client_vanishing_mid_request_does_not_hurt(sim: Simulator, iot: IoTClient) -> None:
    for _ in range(5):
        with socket.create_connection((sim.config.host, sim.port), timeout=5) as sock:
            sock.sendall(b"POST /indices/search HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        with socket.create_connection((sim.config.host, sim.port), timeout=5):
            pass
    assert iot.get_thing_connectivity_data(thingName="thing-00001")["thingName"] == "thing-00001"


def test_keep_alive_serves_many_requests_on_one_connection(sim: Simulator) -> None:
    conn = http.client.HTTPConnection(urlsplit(sim.url).netloc, timeout=5)
    ports = set()
    for _ in range(20):
        conn.request("GET", "/_simulator/health")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        assert conn.sock is not None
        ports.add(conn.sock.getsockname()[1])
    conn.request("HEAD", "/_simulator/health")
    head = conn.getresponse()
    assert head.read() == b""
    assert len(ports) == 1
    conn.close()


def test_many_threads_while_the_clock_moves(
    sim: Simulator, clock: ManualClock, make_client: ClientFactory
) -> None:
    names = sim.fleet.thing_names()
    failures: list[BaseException] = []
    seen: list[int] = []

    def poll() -> None:
        client: Any = make_client(sim)
        try:
            for i in range(40):
                client.get_thing_connectivity_data(thingName=names[i % len(names)])
                seen.append(i)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=poll) for _ in range(6)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        clock.advance(7)
        sim.fleet.thing_names()
        sim.ground_truth()
    for t in threads:
        t.join()
    assert failures == []
    assert len(seen) == 240


def test_index_queries_while_the_fleet_and_memberships_change(
    sim: Simulator, clock: ManualClock, make_client: ClientFactory
) -> None:
    sim.set_index_lag(3)
    failures: list[BaseException] = []
    done: list[int] = []

    def query() -> None:
        client: Any = make_client(sim)
        try:
            for i in range(15):
                client.get_statistics(queryString="*", aggregationField="connectivity.connected")
                client.get_buckets_aggregation(
                    queryString="thingGroupNames:(group-1-1 OR group-2-2)",
                    aggregationField="connectivity.disconnectReason",
                    bucketsAggregationType={},
                )
                client.search_index(queryString="thingTypeName:sensor", maxResults=5)
                done.append(i)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=query) for _ in range(4)]
    for t in threads:
        t.start()
    step = 0
    while any(t.is_alive() for t in threads):
        step += 1
        clock.advance(5)
        thing = f"thing-{1 + step % 30:05d}"
        sim.fleet.add_to_group(thing, "group-2-2")
        sim.fleet.remove_from_group(thing, "group-1-1")
        sim.fleet.create_thing(f"extra-{step}", groups=["group-1-1"])
        if step > 2:
            sim.fleet.delete_thing(f"extra-{step - 2}")
    for t in threads:
        t.join()
    assert failures == []
    assert len(done) == 60
