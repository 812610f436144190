"""Fixtures for the integration tests; the harness itself lives in tests.support.harness."""

from tests.support.harness import harness

__all__ = ["harness"]
