"""Shared fixtures: a private redis-server for the tests marked ``redis``, and
a database of their own on a local PostgreSQL for the tests marked
``postgres``."""

from __future__ import annotations

import os

# Ray reads this when it is imported: every Ray started by the tests then
# binds to 127.0.0.1 only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import getpass
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# The Ray and F10 fixtures shared by tests/actors and tests/cases.
pytest_plugins = ["ray_fixtures"]

REDIS_MISSING = (
    "redis-server not installed: the Redis snapshot store needs a real server"
)
_START_TIMEOUT_S = 10.0
POSTGRES_URL_VARIABLE = "PROJECTIONIST_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_VARIABLE = "PROJECTIONIST_TEST_REQUIRE_POSTGRES"
_POSTGRES_LOCAL = "127.0.0.1:5432"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def free_loopback_port() -> int:
    """A loopback port nothing listens on (at least at the time of asking)."""
    return _free_loopback_port()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:PORT/0`` of a redis-server started for this run
    and stopped after it; tests that use it are skipped when there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(REDIS_MISSING)
    port = _free_loopback_port()
    workdir = tmp_path_factory.mktemp("redis")
    server = _start_redis(binary, port, workdir)
    try:
        _wait_until_answering(server, port, workdir / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _start_redis(binary: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    command = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / "redis.log"),
    ]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_until_answering(
    server: subprocess.Popen[bytes], port: int, log: Path
) -> None:
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                break
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
    finally:
        client.close()
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.fail(f"redis-server on 127.0.0.1:{port} did not answer PING:\n{tail}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://USER@127.0.0.1:5432/projectionist_test_HEX``: a database
    created for this run on the local PostgreSQL and dropped after it.

    The server is reached as the current OS user, then as ``postgres``; set
    ``PROJECTIONIST_TEST_POSTGRES_URL`` to an administrator's URL of another
    server. Tests that use it are skipped when no server answers.
    """
    admin, admin_url = _postgres_admin()
    name = f"projectionist_test_{secrets.token_hex(6)}"
    try:
        admin.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as error:
        admin.close()
        _skip_or_fail(f"cannot create a test database on PostgreSQL: {error}")
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def postgres_events_url(postgres_url: str) -> str:
    """The test database's URL naming an events table of this test's own."""
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}table=events_{secrets.token_hex(6)}"


def _postgres_admin() -> tuple[psycopg.Connection[tuple[object, ...]], str]:
    """A connection to the ``postgres`` database of the test server, and its
    URL; skips the test when none can be made."""
    given = os.environ.get(POSTGRES_URL_VARIABLE)
    if given:
        candidates = [given]
    else:
        users = dict.fromkeys([getpass.getuser(), "postgres"])
        candidates = [
            f"postgresql://{user}@{_POSTGRES_LOCAL}/postgres" for user in users
        ]
    for url in candidates:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=3), url
        except psycopg.Error:
            continue
    where = "the URL in " + POSTGRES_URL_VARIABLE if given else _POSTGRES_LOCAL
    _skip_or_fail(
        f"PostgreSQL not reachable at {where}; set {POSTGRES_URL_VARIABLE} "
        "to a server's URL to run these tests"
    )


def _skip_or_fail(reason: str) -> NoReturn:
    """Skip, or fail where a server is promised (CI sets
    PROJECTIONIST_TEST_REQUIRE_POSTGRES=1, so no test is silently skipped)."""
    if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_POSTGRES_VARIABLE}=1)")
    pytest.skip(reason)
