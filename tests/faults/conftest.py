"""Fixtures for the fault tests: one local Ray per module on loopback, the
base log F10, Redis prefixes of their own, and a TCP proxy in front of the
private redis-server that can refuse connections or lose a reply."""

from __future__ import annotations

import os

# Ray decides at import whether to listen beyond loopback: say no before
# anything in this run imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import contextlib
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import ray

from actors import Projectionist
from stores import RedisSnapshotStore

HERE = Path(__file__).resolve().parent
STOP_GRACE_S = 90.0
PROXY_POLL_S = 0.05


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the whole module, every listener on 127.0.0.1, whose
    workers can import the helper modules of this folder."""
    saved = os.environ.get("PYTHONPATH")
    paths = [str(HERE), str(HERE.parents[1]), *filter(None, [saved])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
        assert addresses == {"127.0.0.1"}, f"Ray is not on loopback: {addresses}"
        yield
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


# f10_events, f10_expected and assert_f10 come from tests/ray_fixtures.py.


@pytest.fixture(scope="session")
def stop_engine() -> Callable[[Projectionist], None]:
    """``engine.stop()``, bounded: a stop that hangs fails the test instead
    of holding up the whole run. Errors still raise."""

    def stop(engine: Projectionist) -> None:
        errors: list[BaseException] = []

        def stopping() -> None:
            try:
                engine.stop()
            except BaseException as error:
                errors.append(error)

        worker = threading.Thread(target=stopping, daemon=True)
        worker.start()
        worker.join(STOP_GRACE_S)
        assert not worker.is_alive(), "the engine did not stop"
        if errors:
            raise errors[0]

    return stop


@pytest.fixture
def redis_prefix_url(redis_url: str) -> Iterator[str]:
    """The private Redis under a prefix of this test's own, emptied after."""
    url = f"{redis_url}?prefix=faults-{uuid.uuid4().hex}"
    yield url
    store = RedisSnapshotStore.from_url(url)
    try:
        store.clear()
    finally:
        store.close()


class RedisProxy:
    """A loopback TCP proxy in front of one Redis server.

    ``refuse()`` closes the listener and every connection, so new
    connections are refused by the operating system until ``accept()``
    listens again on the same port. ``drop_connections()`` closes every
    connection and then each new one as soon as it is made, counting them in
    ``dropped``, until ``accept()``. ``lose_reply_once(marker)`` lets the
    next script call (EVALSHA or EVAL) whose bytes contain ``marker`` reach
    Redis and run there, then closes the client's connection instead of
    relaying Redis's integer reply.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = _free_loopback_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._marker: bytes | None = None
        self._dropping = False
        self.dropped = 0
        self.replies_lost = 0
        self.scripts_seen = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def accepting(self) -> bool:
        with self._lock:
            return self._listener is not None

    def accept(self) -> None:
        with self._lock:
            self._dropping = False
            if self._listener is not None:
                return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(PROXY_POLL_S)
        with self._lock:
            self._listener = listener
        self._spawn(self._accept_loop, listener)

    def drop_connections(self) -> None:
        with self._lock:
            self._dropping = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def refuse(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            _close(sock)

    def lose_reply_once(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def stop(self) -> None:
        self.refuse()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        with self._lock:
            if self._dropping:
                self.dropped += 1
                _close(client)
                return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)
            return
        client.settimeout(None)
        server.settimeout(None)
        with self._lock:
            self._sockets.update((client, server))
        sent: list[bytes] = []
        self._spawn(self._requests, client, server, sent)
        self._spawn(self._replies, server, client, sent)

    def _requests(
        self, client: socket.socket, server: socket.socket, sent: list[bytes]
    ) -> None:
        # Remember what the client sent since the last reply, then pass it on.
        while chunk := _receive(client):
            sent.append(chunk)
            if not _send(server, chunk):
                break
        _close(client, server)

    def _replies(
        self, server: socket.socket, client: socket.socket, sent: list[bytes]
    ) -> None:
        while chunk := _receive(server):
            request = b"".join(sent)
            sent.clear()
            if self._loses(request, chunk):
                break
            if not _send(client, chunk):
                break
        _close(client, server)

    def _loses(self, request: bytes, reply: bytes) -> bool:
        is_script = b"EVALSHA" in request or b"EVAL" in request
        with self._lock:
            if is_script:
                self.scripts_seen += 1
            marker = self._marker
            if marker is None or not is_script or marker not in request:
                return False
            if not reply.startswith(b":"):
                return False
            self._marker = None
            self.replies_lost += 1
            return True


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[RedisProxy]:
    """A proxy in front of the private redis-server, accepting; stopped
    after the test."""
    address = urlsplit(redis_url)
    assert address.hostname == "127.0.0.1"
    proxy = RedisProxy(("127.0.0.1", int(address.port or 6379)))
    proxy.accept()
    try:
        yield proxy
    finally:
        proxy.stop()
