"""Fixtures of the base client's tests."""

from wattpush_testing.fixtures import processes

__all__ = ["processes"]
