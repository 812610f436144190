"""One-line fixes for failures no retry cures, each logged once per episode.

The account or the exporter's identity must change (indexing off, a missing permission,
no or expired credentials, an endpoint that does not resolve). Logging the fix once,
rather than an error code per thing per pass, is what tells an operator what to do.
An episode ends when a pass succeeds without the failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

CREDENTIALS = "docs/configuration.md#aws-credentials"
POLICY = "docs/aws-setup.md#iam-policy-least-privilege"

# error code -> the fix; {operation} and {region} are filled in.
HINTS = {
    "IndexNotReadyException": (
        "fleet indexing of thing connectivity is not enabled in this account and region; "
        "{operation} needs it. Enable it with: aws iot update-indexing-configuration "
        "--thing-indexing-configuration "
        "thingIndexingMode=REGISTRY,thingConnectivityIndexingMode=STATUS --region {region}"
    ),
    "AccessDeniedException": (
        "AWS denied {operation}: give the exporter's identity iot:{operation} in {region} "
        f"({POLICY} lists the policy for each mode)"
    ),
    "UnauthorizedException": (
        "AWS answered UnauthorizedException to {operation}: check the exporter's credentials "
        "and that its identity has iot:{operation} in {region}"
    ),
    "NoCredentials": (
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile "
        "(aws.profile or AWS_PROFILE), IRSA or EKS Pod Identity, or an instance role "
        f"({CREDENTIALS}); to try the exporter without AWS, run it with --demo"
    ),
    "ExpiredToken": (
        "AWS says the exporter's credentials have expired: renew the session the base "
        "credentials come from (with aws.role_arn the exporter renews the assumed role by "
        f"itself, not the credentials it assumes it with; {CREDENTIALS})"
    ),
    "InvalidCredentials": (
        "AWS does not recognise the exporter's access key or its signature: check "
        f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the profile ({CREDENTIALS})"
    ),
    "EndpointNotResolved": (
        "cannot resolve the AWS endpoint's host name for {operation}: check aws.region "
        "({region}) and aws.endpoint_url, and that DNS works from where the exporter runs"
    ),
}
# AWS's codes for the same cause, folded into one hint.
_SAME_CAUSE = {
    "ExpiredTokenException": "ExpiredToken",
    "RequestExpired": "ExpiredToken",
    "InvalidClientTokenId": "InvalidCredentials",
    "UnrecognizedClientException": "InvalidCredentials",
    "SignatureDoesNotMatch": "InvalidCredentials",
    "InvalidSignatureException": "InvalidCredentials",
}


def cause(code: str) -> str | None:
    """The hint a failure code calls for, if any."""
    code = _SAME_CAUSE.get(code, code)
    return code if code in HINTS else None


class Hints:
    """Which sources each hint's episode covers: logged when the first source meets it."""

    def __init__(self) -> None:
        self._episodes: dict[str, set[str]] = {}

    def observe(
        self, source: str, failures: Iterable[tuple[str, str]], *, succeeded: bool, region: str
    ) -> None:
        """Note one pass's (operation, code) failures. A pass that succeeded ends the
        source's part in the episodes whose cause it did not meet."""
        met: set[str] = set()
        for operation, code in failures:
            hint = cause(code)
            if hint is None or hint in met:
                continue
            met.add(hint)
            sources = self._episodes.setdefault(hint, set())
            if not sources:
                log.error(HINTS[hint].format(operation=operation, region=region))
            sources.add(source)
        if succeeded:
            for hint, sources in self._episodes.items():
                if hint not in met:
                    sources.discard(source)

    def forget(self, source: str) -> None:
        """A reload removed the source: it no longer holds any episode open."""
        for sources in self._episodes.values():
            sources.discard(source)
