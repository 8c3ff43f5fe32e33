"""``openai`` backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Works with vLLM's server, ms-swift's ``swift deploy`` and hosted APIs (the paper's GPT-4o row).
A batch is sent as concurrent requests (``concurrency`` in flight). The page image goes as a PNG
data URL in the user turn, before the instruction text. The API key, if any, is read from the
environment variable named by ``api_key_env`` — never from files or the command line.

Time limits (``eval`` params): ``connect_timeout_s`` to open the connection, ``read_timeout_s``
without a byte from the server, and ``request_deadline_s`` for one request in all, retries and
waits included. Retryable failures — connection refused or reset, a time-out, HTTP 429 and 5xx —
are retried up to ``retries`` times with doubling waits (``retry_backoff_s``, at most 60 s, never
past the deadline); any other HTTP error (a 4xx: bad request, unknown model, bad key) or a reply
that is not a chat completion stops at once. A request that still fails ends the run with one line
naming the URL, the tries and the last error (a restarted run resumes where it stopped). HTTP(S)
proxies come from the usual ``https_proxy`` / ``http_proxy`` / ``no_proxy`` variables.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from gelab.errors import GelabError, InputError, quote
from gelab.eval.backends import Request, Sampling

MAX_BACKOFF_S = 60.0  # the longest wait between two tries


class _Retry(Exception):
    """A failure worth another try (the message says what happened)."""


class _Stop(Exception):
    """A failure another try would repeat."""


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


@functools.lru_cache(maxsize=1024)
def image_data_url(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str | None, sampling: Sampling = Sampling(),
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, connect_timeout_s: float = 10.0,
                 read_timeout_s: float = 300.0, request_deadline_s: float = 900.0, retries: int = 4,
                 retry_backoff_s: float = 1.0) -> None:
        if not model:
            raise InputError("openai backend: a model name is needed (--api-model)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--base-url: expected http(s)://HOST[:PORT]/PATH, got {quote(base_url)}")
        try:
            self._port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise InputError(f"--base-url: bad port in {quote(base_url)}") from None
        self._scheme, self._host = parts.scheme, parts.hostname
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.model, self.sampling = model, sampling
        self.api_key = os.environ.get(api_key_env, "")
        self.concurrency = max(1, concurrency)
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.request_deadline_s, self.retries, self.retry_backoff_s = request_deadline_s, retries, retry_backoff_s

    def payload(self, r: Request) -> dict[str, Any]:
        s = self.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": r.system},
                         {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_data_url(r.image)}},
                                                      {"type": "text", "text": r.user}]}],
            "max_tokens": s.max_new_tokens,
            "temperature": max(s.temperature, 0.0),
            "seed": r.seed % (2**31),
        }
        if not s.greedy:
            body["top_p"] = s.top_p
            if s.top_k > 0:
                body["top_k"] = s.top_k  # vLLM and ms-swift accept it; hosted APIs may not
        if s.repetition_penalty != 1.0:
            body["repetition_penalty"] = s.repetition_penalty  # likewise (servers' own default otherwise)
        return body

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, str]:
        """A connection to the endpoint (through the proxy the environment names, if any) and the target."""
        proxy = None if urllib.request.proxy_bypass(self._host) else urllib.request.getproxies().get(self._scheme)
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        if not proxy:
            return cls(self._host, self._port, timeout=timeout), self._path
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if self._scheme == "https":  # a CONNECT tunnel through the proxy
            conn = cls(via.hostname or "", via.port or 8080, timeout=timeout)
            conn.set_tunnel(self._host, self._port)
            return conn, self._path
        return http.client.HTTPConnection(via.hostname or "", via.port or 8080, timeout=timeout), self.url

    def _try(self, body: bytes, headers: dict[str, str], deadline: float) -> str:
        """One HTTP request; raises :class:`_Retry` or :class:`_Stop` with a one-line reason."""
        left = deadline - time.monotonic()
        conn, target = self._connection(min(self.connect_timeout_s, left))
        expired = threading.Event()

        def stop() -> None:  # the deadline bounds the whole exchange, however slowly bytes arrive
            expired.set()
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        timer = threading.Timer(max(0.0, left), stop)
        timer.daemon = True
        timer.start()
        try:
            try:
                conn.connect()
            except TimeoutError:
                raise _Retry(f"no connection within {min(self.connect_timeout_s, left):g} s "
                             f"(connect_timeout_s)") from None
            except ConnectionRefusedError:
                raise _Retry("connection refused (is the server running?)") from None
            except socket.gaierror as exc:
                raise _Stop(f"cannot resolve {self._host} ({exc.strerror or exc})") from None
            except ssl.SSLError as exc:
                raise _Stop(f"TLS failed ({_one_line(str(exc))})") from None
            except OSError as exc:
                if expired.is_set():
                    raise _Retry(f"no answer within request_deadline_s ({self.request_deadline_s:g} s)") from None
                raise _Retry(f"cannot connect ({exc.strerror or type(exc).__name__})") from None
            conn.sock.settimeout(min(self.read_timeout_s, max(0.001, deadline - time.monotonic())))
            try:
                conn.request("POST", target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except TimeoutError:
                raise _Retry(f"no answer within {self.read_timeout_s:g} s (read_timeout_s)") from None
            except (OSError, http.client.HTTPException) as exc:
                if expired.is_set():
                    raise _Retry(f"no answer within request_deadline_s ({self.request_deadline_s:g} s)") from None
                raise _Retry(f"connection lost ({_one_line(str(exc)) or type(exc).__name__})") from None
        finally:
            timer.cancel()
            conn.close()
        if expired.is_set():  # the reply was cut short by the deadline
            raise _Retry(f"no answer within request_deadline_s ({self.request_deadline_s:g} s)")
        if resp.status == 429 or resp.status >= 500:
            raise _Retry(f"HTTP {resp.status}: {_one_line(data.decode('utf-8', 'replace'))}")
        if resp.status != 200:
            raise _Stop(f"HTTP {resp.status}: {_one_line(data.decode('utf-8', 'replace'))}")
        try:
            content = json.loads(data)["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _Stop(f"the reply is not a chat completion: {_one_line(data.decode('utf-8', 'replace'), 120)!r}") \
                from None
        return content if isinstance(content, str) else ""

    def _post(self, r: Request) -> str:
        data = json.dumps(self.payload(r)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        start = time.monotonic()
        deadline = start + self.request_deadline_s
        delay, tries, reasons = self.retry_backoff_s, 0, []
        while True:
            tries += 1
            try:
                return self._try(data, headers, deadline)
            except _Stop as exc:
                reasons.append(str(exc))
                break
            except _Retry as exc:
                reasons.append(str(exc))
            wait = min(delay, MAX_BACKOFF_S)
            if tries > self.retries or time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
            delay *= 2
        earlier = [r for r in dict.fromkeys(reasons[:-1]) if r != reasons[-1]]
        raise GelabError(f"openai backend: POST {self.url} failed after {tries} tr{'y' if tries == 1 else 'ies'} "
                         f"in {time.monotonic() - start:.1f} s: {reasons[-1]}"
                         + (f" (before: {'; '.join(earlier)})" if earlier else ""))

    def generate(self, requests: Sequence[Request]) -> list[str]:
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._post(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            futures = [pool.submit(self._post, r) for r in requests]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:  # a failed request ends the batch: do not start the queued ones
                    f.cancel()
                raise
