"""Fixtures for the integration tests: real servers on 127.0.0.1."""

from collections.abc import Iterator

import pytest

from tests.servers.dovecot import DovecotServer


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One real Dovecot for the session; tests call ``reset()`` before they use it."""
    with DovecotServer() as server:
        yield server
