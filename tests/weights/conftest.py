"""The weights tests never reach a model hub: they download from the loopback file server of
tests/conftest.py (and the offline guard there stops anything else)."""

from __future__ import annotations

import pytest


@pytest.fixture
def server(file_server):
    """The loopback file server, empty: each test writes the files it serves."""
    return file_server
