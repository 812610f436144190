"""MQTT session details: what a thing's current connection set, validated and shared.

AWS reports a connected thing's client ID, keep-alive, clean-session flag and session
expiry (GetThingConnectivityData, the fleet index's connectivity.* fields). Lifecycle
events carry the client ID alone. Pure logic: the sources build sessions, the fleet's
rules (connectivity.py) decide which one a thing holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

# MQTT's own bounds: a keep-alive is a 16-bit number of seconds, a session expiry 32-bit.
MAX_KEEP_ALIVE_SECONDS = 65_535
MAX_SESSION_EXPIRY_SECONDS = 2**32 - 1
# AWS IoT's limit on a client ID.
MAX_CLIENT_ID_CHARS = 128
# An IPv4 or IPv6 address as AWS writes it (at most 45 characters), and a VPC endpoint ID.
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_VPC_ENDPOINT = re.compile(r"vpce-[0-9a-z]{1,32}")
MAX_PORT = 65_535
# Sessions alike are one object (see Sessions); past this many distinct ones, the rest
# are kept as they come rather than grow the table without bound.
MAX_SHARED_SESSIONS = 4096


@dataclass(frozen=True, slots=True)
class Socket:
    """The connection's socket (includeSocketInformation), as far as AWS gave it."""

    source_ip: str | None = None
    source_port: int | None = None
    target_ip: str | None = None
    target_port: int | None = None
    vpc_endpoint_id: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """The session of a thing's current connection, as far as it is known."""

    # None when the client ID is the thing's name, as AWS expects it to be: so the sessions
    # of a fleet share a handful of objects, and a mismatch is `client_id is not None`.
    client_id: str | None = None
    keep_alive: int | None = None  # seconds; AWS drops a silent client after 1.5 x this
    clean_session: bool | None = None
    session_expiry: int | None = None  # seconds
    socket: Socket | None = None  # with poll.socket_information

    @property
    def mismatched(self) -> bool:
        """The client ID is not the thing's name (AWS then maps it only through the
        exclusive thing association, if at all)."""
        return self.client_id is not None

    def with_details_of(self, earlier: Session | None) -> Session:
        """This session with the details it lacks taken from `earlier`, if that session had
        the same client ID: a connect event brings the client ID alone, and the next poll
        confirms or corrects the rest."""
        if earlier is None or earlier.client_id != self.client_id:
            return self
        # Not the socket: a new connection has a new one, which the next poll brings.
        return Session(
            self.client_id,
            self.keep_alive if self.keep_alive is not None else earlier.keep_alive,
            self.clean_session if self.clean_session is not None else earlier.clean_session,
            self.session_expiry if self.session_expiry is not None else earlier.session_expiry,
            self.socket,
        )


# A connection under the thing's own name, nothing else known (what a connect event says).
OWN_CLIENT = Session()


def session_of(
    thing_name: str,
    client_id: Any,
    keep_alive: Any = None,
    clean_session: Any = None,
    session_expiry: Any = None,
) -> Session | None:
    """The session an answer describes, each field kept only if it is well formed; None
    when it describes none (no field AWS sent is usable)."""
    client = (
        client_id
        if isinstance(client_id, str) and 0 < len(client_id) <= MAX_CLIENT_ID_CHARS
        else None
    )
    alive = _bounded(keep_alive, MAX_KEEP_ALIVE_SECONDS)
    clean = clean_session if isinstance(clean_session, bool) else None
    expiry = _bounded(session_expiry, MAX_SESSION_EXPIRY_SECONDS)
    if client is None and alive is None and clean is None and expiry is None:
        return None
    if client == thing_name and alive is None and clean is None and expiry is None:
        return OWN_CLIENT  # a connect event's, most of the time: one object for them all
    return Session(None if client in (None, thing_name) else client, alive, clean, expiry)


def session_in(thing_name: str, fields: Mapping[str, Any]) -> Session | None:
    """The session in an answer that uses AWS's field names: GetThingConnectivityData's,
    or a SearchIndex document's `connectivity`."""
    session = session_of(
        thing_name,
        fields.get("clientId"),
        fields.get("keepAliveDuration"),
        fields.get("cleanSession"),
        fields.get("sessionExpiry"),
    )
    socket = socket_in(fields)
    if socket is None:
        return session
    return replace(session or Session(), socket=socket)


def socket_in(fields: Mapping[str, Any]) -> Socket | None:
    """includeSocketInformation's fields of an answer, each kept only if well formed; None
    when there are none."""
    socket = Socket(
        _matching(fields.get("sourceIp"), _ADDRESS),
        _bounded(fields.get("sourcePort"), MAX_PORT),
        _matching(fields.get("targetIp"), _ADDRESS),
        _bounded(fields.get("targetPort"), MAX_PORT),
        _matching(fields.get("vpcEndpointId"), _VPC_ENDPOINT),
    )
    return None if socket == Socket() else socket


def _matching(value: Any, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


def _bounded(value: Any, most: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most:
        return value
    return None


class Sessions:
    """One object per distinct session whose client ID is its thing's name: a fleet of a
    million things holds a handful of them, not a million."""

    def __init__(self) -> None:
        self._shared: dict[Session, Session] = {}

    def shared(self, session: Session | None) -> Session | None:
        if session is None or session.client_id is not None or session.socket is not None:
            return session  # a mismatched client ID, or a socket, is its thing's own
        found = self._shared.get(session)
        if found is not None:
            return found
        if len(self._shared) < MAX_SHARED_SESSIONS:
            self._shared[session] = session
        return session
