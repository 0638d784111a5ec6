"""What the running server accepts: body sizes, idle and slow connections, concurrent subscribes.

Against `diffusion serve` (uvicorn) on port 0, started with the open-file limit most systems
give a process (1024), as in production.
"""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEY

DIFFUSION = str(Path(sys.executable).with_name("diffusion"))
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MB = 1024 * 1024


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    lines: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_memory_kb(self) -> int:
        """The server's resident memory high-water mark (VmHWM), in kB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)


def _typical_file_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def _serve(home: Path, database_url: str, **settings: str) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFUSION_")}
    env.update(
        DIFFUSION_HOME=str(home),
        DIFFUSION_DATABASE_URL=database_url,
        DIFFUSION_SECRET_KEY=TEST_KEY,
        **{f"DIFFUSION_{name.upper()}": value for name, value in settings.items()},
    )
    process = subprocess.Popen(
        [DIFFUSION, "serve", "--no-scheduler", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_typical_file_limit,
    )
    assert process.stdout is not None
    lines: list[str] = []
    port = None
    for line in process.stdout:
        lines.append(line)
        found = LISTENING.search(line)
        if found:
            port = int(found.group(1))
            break
    assert port is not None, "".join(lines)
    # Keep reading the log, so that the server never blocks on a full pipe.
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        yield Server(process, port, lines)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        reader.join(timeout=10)


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str) -> Iterator[Server]:
    # A head timeout longer than any wait below: only the guards under test close connections.
    yield from _serve(tmp_path, sqlite_url, web_header_timeout_seconds="120")


def _head(path: str, length: int | None = None, chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines.append("Content-Type: application/x-www-form-urlencoded")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _read_answer(connection: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = connection.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_a_5_mb_post_gets_413_unread_and_the_server_does_not_grow(server: Server) -> None:
    before = server.peak_memory_kb()
    started = time.perf_counter()
    for path in ("/unsubscribe/x", "/subscribe", "/", "/healthz"):
        # Declared: answered before a byte of the body is sent.
        with server.connect() as connection:
            connection.sendall(_head(path, length=5 * MB))
            assert _status(_read_answer(connection)) == 413, path
        if path not in ("/unsubscribe/x", "/subscribe"):
            continue  # a page that reads no body answers without reading this one (405)
        # Chunked, no length declared: refused once past the limit, the rest never read.
        with server.connect() as connection:
            connection.sendall(_head(path, chunked=True))
            chunk = b"email=" + b"a" * (64 * 1024)
            sent = 0
            try:
                while sent < 5 * MB:
                    connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server closed it, having answered
            assert _status(_read_answer(connection)) == 413, path
    # And as a client library sends it, the whole body at once.
    try:
        refused = httpx.post(
            f"{server.url}/unsubscribe/x", content=b"a" * (5 * MB), timeout=30
        ).status_code
    except httpx.TransportError:
        refused = 413  # closed mid-upload after the 413, which httpx may not read
    assert refused == 413
    print(f"\n7 refusals of 5 MB bodies in {time.perf_counter() - started:.2f} s")
    grown = server.peak_memory_kb() - before
    print(f"peak memory of the server grew by {grown} kB")
    assert grown < 2 * 1024  # a 5 MB body read whole would have grown it by more than 5 MB
    assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200


def test_a_small_form_still_goes_through(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/")
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        answer = client.post(
            "/subscribe",
            data={
                "email": "ok@example.org",
                "csrf_token": token,
                "language": "en",
                "name": "A" * 500,
            },
        )
    assert answer.status_code == 200, answer.text


def test_1100_idle_connections_do_not_stop_healthz(server: Server) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:  # this test holds the other end of every connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = []
    try:
        for _ in range(1100):
            idle.append(server.connect())
        health = httpx.get(f"{server.url}/healthz", timeout=20)
        assert health.status_code == 200 and health.json()["status"] == "ok"
    finally:
        for connection in idle:
            connection.close()


def test_connections_that_send_no_request_head_in_time_are_closed(
    tmp_path: Path, sqlite_url: str
) -> None:
    for server in _serve(tmp_path, sqlite_url, web_header_timeout_seconds="0.5"):
        with server.connect() as silent, server.connect() as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            # One header byte at a time, never finishing the head (slowloris).
            closed = False
            for _ in range(200):
                try:
                    slow.sendall(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                time.sleep(0.05)
            assert closed, "a request head sent a byte at a time kept its connection"
            assert silent.recv(1) == b""  # closed by the server, not by our 30 s timeout
        # A connection used for a request, then idle, is closed too (keep-alive timeout).
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/healthz").status_code == 200


def _burst(url: str, email: str, tries: int) -> list[int]:
    with httpx.Client(base_url=url, timeout=60) as client:
        token = CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]
        cookies = dict(client.cookies)
    start = threading.Barrier(tries)
    statuses: list[int] = []

    def one() -> None:
        with httpx.Client(base_url=url, timeout=60, cookies=cookies) as client:
            start.wait()
            answer = client.post(
                "/subscribe", data={"email": email, "csrf_token": token, "language": "en"}
            )
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=one) for _ in range(tries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_subscribes_of_one_new_address_never_answer_500(
    tmp_path: Path, database_url: str
) -> None:
    limits = {"subscribe_limit_per_address": "1000", "subscribe_limit_per_client": "1000"}
    for server in _serve(tmp_path, database_url, **limits):
        statuses = []
        for attempt in range(5):
            statuses += _burst(server.url, f"burst{attempt}@example.org", 6)
        assert set(statuses) == {200}, statuses
    # The requests are recorded after the answer: none of them failed there either.
    log = "".join(server.lines)
    assert "Traceback" not in log and "IntegrityError" not in log, log


def test_tokens_are_not_written_to_the_access_log(server: Server) -> None:
    secret_token = "7.aGVsbG8.c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw"
    for path in (
        f"/unsubscribe/{secret_token}",
        f"/preferences/{secret_token}?lang=fr",
        f"/confirm/{secret_token}",
        f"/archive/3?sig={secret_token}",
    ):
        httpx.get(f"{server.url}{path}", timeout=30)
    httpx.get(f"{server.url}/healthz", timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("/healthz" in line for line in server.lines):
        time.sleep(0.05)
    log = "".join(server.lines)
    assert "GET /unsubscribe/… HTTP/1.1" in log and "GET /archive/3?sig=… HTTP/1.1" in log, log
    assert secret_token not in log
