"""The openai backend against endpoints that misbehave, on loopback: one that accepts and never answers,
one that answers a byte at a time, a closed port, and scripted HTTP errors. Every failure is bounded in
time, retried only when retrying can help, and ends as one line (a GelabError, exit 2 from the CLI)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from gelab import format as fmt
from gelab.errors import GelabError
from gelab.eval.backends import Request, Sampling
from gelab.eval.backends.openai import OpenAIBackend

FAST = {"connect_timeout_s": 1.0, "read_timeout_s": 0.3, "request_deadline_s": 1.5, "retries": 3,
        "retry_backoff_s": 0.05}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "page_0.png"
    Image.new("RGB", (28, 28), "white").save(path)
    return str(path)


def _request(image: str) -> Request:
    return Request(fmt.SYSTEM_PROMPT, fmt.instruction_text("page_0", "page_5"), image, seed=1)


def _serve(handle, connections: list[socket.socket]) -> Iterator[str]:  # type: ignore[no-untyped-def]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def loop() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            connections.append(conn)
            threading.Thread(target=handle, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join()
        for conn in connections:
            conn.close()
        server.close()


@pytest.fixture
def silent() -> Iterator[tuple[str, list[socket.socket]]]:
    """Accepts every connection and never sends a byte."""
    connections: list[socket.socket] = []
    gen = _serve(lambda conn, stop: stop.wait(), connections)
    yield next(gen), connections
    next(gen, None)


@pytest.fixture
def trickle() -> Iterator[str]:
    """Answers one byte every 0.05 s (each read succeeds in time; only a total deadline stops it)."""
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
            if stop.wait(0.05):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return
    gen = _serve(handle, [])
    yield next(gen)
    next(gen, None)


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


class Scripted(http.server.BaseHTTPRequestHandler):
    replies: list[tuple[int, str]] = []
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        status, body = self.replies.pop(0) if self.replies else (200, "")
        type(self).seen.append(str(status))
        if status == 200:
            body = json.dumps({"choices": [{"message": {"role": "assistant", "content": body}}]})
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[type[Scripted]]:
    handler = type("Handler", (Scripted,), {"replies": [], "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


def _fails(backend: OpenAIBackend, image: str, within: float) -> str:
    start = time.monotonic()
    with pytest.raises(GelabError) as err:
        backend.generate([_request(image)])
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert elapsed < within, f"took {elapsed:.1f} s: {message}"
    assert "\n" not in message and message.startswith("openai backend: POST http://127.0.0.1:")
    return message


def test_a_server_that_never_answers_is_bounded_by_the_read_timeout_and_the_deadline(silent, image) -> None:
    """Before: 120 s x 5 tries per request."""
    url, connections = silent
    message = _fails(OpenAIBackend(url, "m", Sampling(), **FAST), image, within=FAST["request_deadline_s"] + 1.5)
    assert "(read_timeout_s)" in message and len(connections) >= 2  # timed out, then retried


def test_a_server_that_answers_a_byte_at_a_time_is_stopped_by_the_deadline(trickle, image) -> None:
    backend = OpenAIBackend(trickle, "m", Sampling(), **{**FAST, "retries": 0, "read_timeout_s": 2.0,
                                                          "request_deadline_s": 1.0})
    message = _fails(backend, image, within=3.0)
    assert "request_deadline_s (1 s)" in message and "after 1 try" in message


def test_a_closed_port_is_retried_a_bounded_number_of_times(closed_port, image) -> None:
    message = _fails(OpenAIBackend(closed_port, "m", Sampling(), **FAST), image, within=1.5)
    assert "after 4 tries" in message and "connection refused" in message


@pytest.mark.parametrize("status", [429, 500, 503])
def test_overload_and_server_errors_are_retried(scripted, image, status: int) -> None:
    scripted.replies = [(status, "busy"), (status, "busy"), (200, "Action: complete")]
    assert OpenAIBackend(scripted.url, "m", Sampling(), **FAST).generate([_request(image)]) == ["Action: complete"]
    assert scripted.seen == [str(status), str(status), "200"]


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_stop_at_once_naming_the_status(scripted, image, status: int) -> None:
    scripted.replies = [(status, '{"error": {"message": "The model `m` does not exist.\\n"}}')]
    message = _fails(OpenAIBackend(scripted.url, "m", Sampling(), **FAST), image, within=1.0)
    assert scripted.seen == [str(status)] and "after 1 try" in message and f"HTTP {status}: " in message


def test_a_reply_that_is_not_a_chat_completion_is_not_retried(scripted, image) -> None:
    scripted.replies = [(201, "<html>not json</html>")]
    message = _fails(OpenAIBackend(scripted.url, "m", Sampling(), **FAST), image, within=1.0)
    assert "HTTP 201" in message and scripted.seen == ["201"]


def test_one_failed_request_stops_the_batch_without_starting_the_queued_ones(closed_port, image) -> None:
    backend = OpenAIBackend(closed_port, "m", Sampling(), concurrency=2, **{**FAST, "retries": 1,
                                                                            "retry_backoff_s": 0.2})
    start = time.monotonic()
    with pytest.raises(GelabError):
        backend.generate([_request(image)] * 40)
    assert time.monotonic() - start < 2.0  # 40 requests x 0.2 s of back-off would take 4 s


def test_cli_with_an_unreachable_endpoint_ends_in_one_line(closed_port, tmp_path: Path, run_cli) -> None:
    from evalkit import static_rows, write_env_folder

    env = write_env_folder(tmp_path / "env", images=True, size=28)
    samples = tmp_path / "static.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in static_rows(image_root=str(env))[:2]))
    params = tmp_path / "params.yaml"
    params.write_text("eval:\n  connect_timeout_s: 0.5\n  read_timeout_s: 0.5\n  request_deadline_s: 1\n"
                      "  retries: 1\n  retry_backoff_s: 0.05\n")
    start = time.monotonic()
    result = run_cli("eval", "static", "--params", params, "--policy", "openai", "--base-url", closed_port,
                     "--api-model", "m", "--samples", samples, "--predictions", tmp_path / "p.jsonl",
                     "--out", tmp_path / "m.json")
    assert time.monotonic() - start < 5
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "connection refused" in result.stderr


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "http://127.0.0.1:99999/v1", "ftp://127.0.0.1/v1", "http:///v1"])
def test_a_malformed_base_url_is_refused_before_any_request(url: str) -> None:
    """Before: such a URL was sent, retried with back-off, and only then refused."""
    from gelab.errors import InputError

    with pytest.raises(InputError, match="--base-url"):
        OpenAIBackend(url, "m", Sampling())


@pytest.mark.parametrize("reply", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\xff\xfe\xfd\xfc"])
def test_broken_replies_end_in_one_line(reply: bytes, image) -> None:
    """Before: a bad status line, a cut-short body or non-UTF-8 bytes raised http.client / Unicode errors
    (a traceback)."""
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(reply)
        conn.close()
    gen = _serve(handle, [])
    url = next(gen)
    try:
        _fails(OpenAIBackend(url, "m", Sampling(), **FAST), image, within=2.0)
    finally:
        next(gen, None)
