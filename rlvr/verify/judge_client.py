"""An OpenAI-compatible client for model judges: batching, deadlines, retries and a cache.

Why not the ``openai`` package: a judge's failures have to map onto reward semantics, which a general
client hides. A *transient* failure (the server is restarting, 429, 5xx, a slow answer) must end, inside
a deadline the verifier pool can rely on, as a failed sample so training goes on; a *configuration*
failure (wrong URL, key, model name or parameter: 400/401/403/404) must raise with the server's own
message, because retrying it only burns the run. A prompt longer than the judge's context is neither:
it is one sample's problem, so it fails that sample alone ("judge_rejected").

Batching: ``api="completions"`` sends all prompts of a call in ONE request (vLLM and the OpenAI API
accept a list of prompts; vLLM schedules them together). ``api="chat"`` has no list form, so it sends
one request per prompt, concurrently on a bounded thread pool. Identical prompts within a call are
sent once: GRPO samples a prompt n times and the extracted answers often coincide.

Caching: greedy judging is a pure function of (model, request), so replies are cached under a hash of
both, in memory (LRU) and optionally in a SQLite file that several verifier worker processes share (WAL
mode; a busy database waits, a broken one is logged and skipped, never fatal). Sampled judging
(``temperature > 0``) is never cached: a cache would silently turn it into a fixed judge.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import httpx

__all__ = ["JudgeClient", "JudgeConfigError", "JudgeError", "JudgeReply", "JudgeUnavailableError"]

logger = logging.getLogger(__name__)

Api = Literal["completions", "chat"]
# 408 (request timeout) and 429 (rate limit) are the only 4xx a later attempt can fix.
_RETRYABLE_4XX = {408, 429}
# A prompt over the judge's context: vLLM says "maximum context length", OpenAI's code is
# "context_length_exceeded". Not "max_tokens=... cannot be greater than max_model_len": that is config.
_CONTEXT_ERROR = re.compile(r"maximum context length|context_length_exceeded|prompt is too long", re.IGNORECASE)
_HINTS = {
    401: " (check the API key: api_key_env names the environment variable holding it)",
    403: " (the API key is not allowed to use this model or endpoint)",
    404: " (check base_url, which usually ends in /v1, and the model name the server serves)",
}


class JudgeError(RuntimeError):
    """Base class of the judge client's errors."""


class JudgeConfigError(JudgeError):
    """The endpoint refused the request for a reason retrying cannot fix (bad URL, key, model, parameter)."""


class JudgeUnavailableError(JudgeError):
    """The endpoint could not be reached or kept failing until the retries or the deadline ran out."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


class _Rejected(JudgeError):
    """The endpoint refused one prompt (over the judge's context length)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class JudgeReply:
    """The judge's answer to one prompt; ``error`` ("judge_unavailable: ..." / "judge_rejected: ...")
    is set instead of ``text`` when there is none. ``attempts`` counts HTTP attempts (0 when cached)."""

    text: str | None
    finish_reason: str | None = None
    cached: bool = False
    attempts: int = 0
    error: str | None = None


class JudgeClient:
    """Talks to one model behind an OpenAI-compatible ``base_url`` (e.g. ``http://host:8000/v1``).

    Args:
        api: "completions" (one batched request per call; the prompt must carry the judge's own
            chat formatting) or "chat" (one request per prompt; the server applies the chat template).
        system_prompt: chat only, an optional system message.
        max_tokens, temperature: decoding; greedy by default because a judge should be a function.
        extra_body: more request fields (``stop``, ``top_p``, vLLM's ``chat_template_kwargs``, ...).
        api_key_env: name of the environment variable holding the API key (sent as a Bearer token);
            keys never appear in recipes or logs.
        timeout_s: per HTTP attempt (each of connect / read / write phases).
        deadline_s: for one :meth:`complete` call, retries and back-off included. Keep it below the
            verifier pool's deadline so a slow judge yields "judge_unavailable" results instead of a
            killed worker.
        max_retries: further attempts after the first, on connection errors, timeouts, 408, 429, 5xx.
        backoff_s, max_backoff_s: exponential back-off ``backoff_s * 2**k`` capped at ``max_backoff_s``,
            with equal jitter (half fixed, half random) so worker processes do not retry in lock-step;
            a ``Retry-After`` header lengthens the wait.
        max_concurrency: chat requests in flight (and the HTTP connection pool size).
        cache_size: in-memory LRU entries (0 disables); cache_path: optional SQLite file.

    Safe to use from one thread at a time; it is built once per verifier worker process.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api: Api = "completions",
        system_prompt: str | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        extra_body: Mapping[str, Any] | None = None,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        deadline_s: float = 180.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 20.0,
        max_concurrency: int = 16,
        cache_size: int = 8192,
        cache_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if api not in ("completions", "chat"):
            raise ValueError(f"api must be 'completions' or 'chat', got {api!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout_s <= 0 or deadline_s <= 0 or max_tokens < 1 or max_retries < 0 or max_concurrency < 1:
            raise ValueError(
                f"need timeout_s > 0, deadline_s > 0, max_tokens >= 1, max_retries >= 0, max_concurrency >= 1; "
                f"got {timeout_s}, {deadline_s}, {max_tokens}, {max_retries}, {max_concurrency}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api: Api = api
        self.system_prompt = system_prompt
        self.sampling = {"max_tokens": int(max_tokens), "temperature": float(temperature), **dict(extra_body or {})}
        self.timeout_s, self.deadline_s = float(timeout_s), float(deadline_s)
        self.max_retries, self.backoff_s, self.max_backoff_s = int(max_retries), float(backoff_s), float(max_backoff_s)
        self.max_concurrency = int(max_concurrency)
        self._headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ValueError(f"api_key_env={api_key_env!r}, but that environment variable is unset or empty")
            self._headers["Authorization"] = f"Bearer {key}"
        cacheable = float(temperature) == 0.0
        self._memory = _LRU(cache_size if cacheable else 0)
        self._disk = _SqliteCache(Path(cache_path).expanduser()) if cacheable and cache_path else None
        self._http: httpx.Client | None = None
        self._stats_lock = threading.Lock()
        #: requests, retries, prompts_sent, memory_hits, disk_hits, failures: for logs and tests
        self.stats: Counter[str] = Counter()

    # -- public ---------------------------------------------------------------------------------

    def complete(self, prompts: Sequence[str]) -> list[JudgeReply]:
        """The judge's reply to each prompt, in order. Raises only :class:`JudgeConfigError`."""
        deadline = time.monotonic() + self.deadline_s
        keys = [self._cache_key(p) for p in prompts]
        found: dict[str, JudgeReply] = {}
        for key in dict.fromkeys(keys):
            hit = self._memory.get(key)
            if hit is not None:
                found[key] = hit
                self._count("memory_hits")
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing and self._disk is not None:
            for key, hit in self._disk.get_many(missing).items():
                found[key] = hit
                self._memory.put(key, hit)
                self._count("disk_hits")
        found = {k: replace(r, cached=True, attempts=0) for k, r in found.items()}
        todo = {k: p for k, p in zip(keys, prompts) if k not in found}  # first prompt of each key
        if todo:
            fresh = self._send(list(todo.values()), deadline)
            for key, reply in zip(todo, fresh):
                found[key] = reply
                if reply.error is None:
                    self._memory.put(key, reply)
            if self._disk is not None:
                self._disk.put_many({k: found[k] for k in todo if found[k].error is None})
        return [found[k] for k in keys]

    def probe(self) -> list[str]:
        """The model ids the endpoint serves (``GET /models``), checking that ``model`` is one of them.

        For a start-up check: a wrong URL, key or model name raises :class:`JudgeConfigError` here
        instead of failing every sample later; an unreachable endpoint raises JudgeUnavailableError.
        """
        url = f"{self.base_url}/models"
        try:
            response = self._client().get(url, timeout=min(self.timeout_s, 30.0))
        except httpx.TransportError as exc:
            raise JudgeUnavailableError(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise JudgeConfigError(_status_message(url, response))
        body = _json(response, url)
        models = body.get("data") if isinstance(body, dict) else None
        ids = [str(m.get("id")) for m in models or [] if isinstance(m, dict)]
        if ids and self.model not in ids:
            raise JudgeConfigError(f"{url} does not serve model {self.model!r}; it serves: {', '.join(ids)}")
        return ids

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._disk is not None:
            self._disk.close()

    # -- requests -------------------------------------------------------------------------------

    def _send(self, prompts: list[str], deadline: float) -> list[JudgeReply]:
        if self.api == "chat" or len(prompts) == 1:
            return self._each(prompts, deadline)
        try:
            body, attempts = self._post("/completions", {"prompt": prompts}, deadline)
        except JudgeUnavailableError as exc:
            return [self._failed(f"judge_unavailable: {exc}", exc) for _ in prompts]
        except _Rejected:
            # One prompt is over the judge's context and vLLM refuses the whole request: send them one
            # by one so only the culprits fail.
            return self._each(prompts, deadline)
        return _completion_replies(body, len(prompts), attempts, f"{self.base_url}/completions")

    def _each(self, prompts: list[str], deadline: float) -> list[JudgeReply]:
        """One request per prompt, at most ``max_concurrency`` in flight."""
        if len(prompts) == 1:
            return [self._one(prompts[0], deadline)]
        self._client()  # create the shared connection pool before the threads use it
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._one(p, deadline), prompts))

    def _one(self, prompt: str, deadline: float) -> JudgeReply:
        path = "/chat/completions" if self.api == "chat" else "/completions"
        url = f"{self.base_url}{path}"
        try:
            body, attempts = self._post(path, self._request_fields(prompt), deadline)
        except JudgeUnavailableError as exc:
            return self._failed(f"judge_unavailable: {exc}", exc)
        except _Rejected as exc:
            return self._failed(f"judge_rejected: {exc}", exc)
        if self.api == "completions":
            return _completion_replies(body, 1, attempts, url)[0]
        choices = body.get("choices") if isinstance(body, dict) else None
        first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        if not isinstance(first.get("message"), dict):
            raise JudgeConfigError(f"{url} answered 200 without choices[0].message; is it OpenAI-compatible?")
        return JudgeReply(first["message"].get("content") or "", first.get("finish_reason"), attempts=attempts)

    def _post(self, path: str, fields: dict[str, Any], deadline: float) -> tuple[dict[str, Any], int]:
        """POST with retries; returns (JSON body, attempts). Raises JudgeConfigError, _Rejected or
        JudgeUnavailableError (the last error, once retries or the deadline are used up)."""
        url = f"{self.base_url}{path}"
        payload = {"model": self.model, **fields, **self.sampling}
        started, attempt, last = time.monotonic(), 0, "no attempt made: the deadline had passed"
        while attempt <= self.max_retries:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempt += 1
            self._count("requests")
            self._count("prompts_sent", len(fields["prompt"]) if isinstance(fields.get("prompt"), list) else 1)
            retry_after = 0.0
            try:
                response = self._client().post(url, json=payload, timeout=min(self.timeout_s, remaining))
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code == 200:
                    return _json(response, url), attempt
                status = response.status_code
                if status in _RETRYABLE_4XX or status >= 500:
                    last = f"HTTP {status}: {_server_message(response)}"
                    retry_after = _retry_after(response)
                elif status in (400, 413, 422) and _CONTEXT_ERROR.search(_server_message(response)):
                    raise _Rejected(f"HTTP {status}: {_server_message(response)}", attempt)
                else:
                    raise JudgeConfigError(_status_message(url, response))
            if attempt > self.max_retries:
                break
            delay = max(self._backoff(attempt), retry_after)
            if time.monotonic() + delay >= deadline:
                break
            self._count("retries")
            time.sleep(delay)
        elapsed = time.monotonic() - started
        raise JudgeUnavailableError(f"{url}: {last} ({attempt} attempt(s) in {elapsed:.1f} s)", attempt)

    def _backoff(self, attempt: int) -> float:
        cap = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return cap / 2 + random.uniform(0.0, cap / 2)

    def _request_fields(self, prompt: str) -> dict[str, Any]:
        if self.api == "completions":
            return {"prompt": prompt}
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return {"messages": [*messages, {"role": "user", "content": prompt}]}

    def _cache_key(self, prompt: str) -> str:
        request = {"api": self.api, "model": self.model, **self._request_fields(prompt), **self.sampling}
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _client(self) -> httpx.Client:
        if self._http is None:
            limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
            self._http = httpx.Client(headers=self._headers, limits=limits, timeout=self.timeout_s)
        return self._http

    def _failed(self, error: str, exc: JudgeUnavailableError | _Rejected) -> JudgeReply:
        self._count("failures")
        return JudgeReply(text=None, attempts=exc.attempts, error=error)

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n


def _completion_replies(body: Any, n: int, attempts: int, url: str) -> list[JudgeReply]:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise JudgeConfigError(f"{url} answered {got} choices for {n} prompt(s); is it an OpenAI-compatible server?")
    replies: list[JudgeReply | None] = [None] * n
    for position, choice in enumerate(choices):
        index = choice.get("index", position) if isinstance(choice, dict) else None
        if not isinstance(index, int) or not 0 <= index < n or replies[index] is not None:
            raise JudgeConfigError(f"{url} answered choices with bad or repeated indices")
        replies[index] = JudgeReply(choice.get("text") or "", choice.get("finish_reason"), attempts=attempts)
    return replies  # type: ignore[return-value]


def _json(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise JudgeConfigError(f"{url} answered 200 with a body that is not JSON: {response.text[:200]!r}") from None


def _server_message(response: httpx.Response) -> str:
    """The server's own explanation: OpenAI-style ``{"error": {"message": ...}}``, else the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:500]
    if isinstance(body, dict) and body.get("detail"):  # FastAPI's validation errors
        return str(body["detail"])[:500]
    return json.dumps(body)[:500]


def _status_message(url: str, response: httpx.Response) -> str:
    status = response.status_code
    return f"judge endpoint {url} answered HTTP {status}: {_server_message(response)}{_HINTS.get(status, '')}"


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:  # an HTTP date: rare from model servers; fall back to our own back-off
        return 0.0


class _LRU:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, JudgeReply] = OrderedDict()

    def get(self, key: str) -> JudgeReply | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, value: JudgeReply) -> None:
        if self.maxsize <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)


class _SqliteCache:
    """Replies on disk, shared by processes: WAL journal (readers do not block the writer), a 30 s busy
    timeout for concurrent writers, one short transaction per batch. Not for network file systems,
    where SQLite's locking is unreliable. Any SQLite error disables the cache for this process with
    one warning: a cache must never fail a training step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._broken = False

    def get_many(self, keys: Sequence[str]) -> dict[str, JudgeReply]:
        out: dict[str, JudgeReply] = {}
        conn = self._connect()
        if conn is None:
            return out
        try:
            for start in range(0, len(keys), 500):  # below SQLite's bound-variable limit
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, text, finish_reason FROM judge_cache WHERE key IN ({marks})", chunk)
                out.update({key: JudgeReply(text, finish) for key, text, finish in rows})
        except sqlite3.Error as exc:
            self._disable(exc)
        return out

    def put_many(self, replies: Mapping[str, JudgeReply]) -> None:
        conn = self._connect() if replies else None
        if conn is None:
            return
        rows = [(k, r.text, r.finish_reason, time.time()) for k, r in replies.items()]
        try:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO judge_cache VALUES (?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            self._disable(exc)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None or self._broken:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            for attempt in range(5):  # switching to WAL needs a moment of exclusive access
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 4:
                        raise
                    time.sleep(0.1 * (attempt + 1))
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS judge_cache "
                    "(key TEXT PRIMARY KEY, text TEXT NOT NULL, finish_reason TEXT, created REAL NOT NULL)"
                )
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return None
        self._conn = conn
        return conn

    def _disable(self, exc: Exception) -> None:
        logger.warning("judge cache %s disabled in process %d: %s", self.path, os.getpid(), exc)
        self._broken = True
        self.close()
