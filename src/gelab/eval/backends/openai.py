"""``openai`` backend: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Works with vLLM's server, ms-swift's ``swift deploy`` and hosted APIs (the paper's GPT-4o row).
A batch is sent as concurrent requests (``concurrency`` in flight). The page image goes as a PNG
data URL in the user turn, before the instruction text. The API key, if any, is read from the
environment variable named by ``api_key_env`` — never from files or the command line.

Transient failures (connection errors, HTTP 429 and 5xx) are retried with back-off; a request that
still fails stops the run with an error (a restarted run resumes where it stopped).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from gelab.errors import GelabError, InputError
from gelab.eval.backends import Request, Sampling


@functools.lru_cache(maxsize=1024)
def image_data_url(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: str | None, sampling: Sampling = Sampling(),
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, timeout_s: float = 120.0,
                 retries: int = 4) -> None:
        if not model:
            raise InputError("openai backend: a model name is needed (--api-model)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.sampling = model, sampling
        self.api_key = os.environ.get(api_key_env, "")
        self.concurrency, self.timeout_s, self.retries = max(1, concurrency), timeout_s, retries

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
        return body

    def _post(self, r: Request) -> str:
        data = json.dumps(self.payload(r)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay, last = 1.0, ""
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    doc = json.loads(resp.read().decode("utf-8"))
                content = doc["choices"][0]["message"].get("content")
                return content if isinstance(content, str) else ""
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}"
                if exc.code != 429 and exc.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
                last = f"malformed response ({exc!r})"
                break
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        raise GelabError(f"openai backend: request to {self.url} failed: {last}")

    def generate(self, requests: Sequence[Request]) -> list[str]:
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._post(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._post, requests))
