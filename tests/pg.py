"""A private PostgreSQL database for a test: `postgres_url` (a fixture; conftest.py offers it).

Each use creates a database of its own (`idf_test_<random>`) on the server at
IDF_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test, the database used only
to connect and run CREATE/DROP DATABASE), yields its URL for `database_url`, and drops it at the
end; tests never touch the shared database's tables.

Skipped only when no server can be connected to (psycopg.OperationalError on connect), with the
reason. With IDF_REQUIRE_POSTGRES=1 (.ci/run sets it when 127.0.0.1:5432 answers) that is a
failure instead. Every other error (creating the database, anything in the test) fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_URL = os.environ.get("IDF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CONNECT_TIMEOUT_S = 10  # a local server answers in milliseconds, also when loaded


def required() -> bool:
    return os.environ.get("IDF_REQUIRE_POSTGRES") == "1"


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"


def _unavailable(reason: str) -> None:
    if required():
        pytest.fail(f"{reason} (IDF_REQUIRE_POSTGRES=1: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


def connect_admin(url: str = ADMIN_URL):
    """An autocommit connection to the server, or skip (fail when required) if none answers."""
    try:
        import psycopg
    except (
        ImportError
    ) as e:  # the server extra is not installed: there is no PostgreSQL store either
        _unavailable(f"psycopg is not installed: {e}")
    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.OperationalError as e:
        _unavailable(
            f"no PostgreSQL server to connect to at {_where(url)}: {' '.join(str(e).split())}"
        )


def database_url(name: str, url: str = ADMIN_URL) -> str:
    """`url` with its database replaced by `name` (user, host, port and query kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def private_database(url: str = ADMIN_URL) -> Iterator[str]:
    """Create a fresh database, yield its URL, drop it (and any connection left to it) after."""
    from psycopg import sql

    admin = connect_admin(url)
    name = f"idf_test_{secrets.token_hex(6)}"
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield database_url(name, url)
        finally:
            # FORCE (PostgreSQL 13+) ends connections a server under test may have left open
            force = " WITH (FORCE)" if admin.info.server_version >= 130000 else ""
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name))
            )
    finally:
        admin.close()


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """The URL of a private, empty PostgreSQL database for this test (see the module docstring)."""
    yield from private_database()
