"""Shared fixtures. Host tests need no OpenCL; device tests run once per OpenCL device."""

from __future__ import annotations

import pytest

from clconv import plugins


@pytest.fixture
def fresh_host(monkeypatch):
    """A plugin host loaded from scratch for this test, and forgotten after it."""
    plugins.reset_host()
    yield plugins.get_host
    plugins.reset_host()
