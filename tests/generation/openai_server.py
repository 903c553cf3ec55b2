"""A scriptable fake of the OpenAI HTTP API on 127.0.0.1, for the openai backends' tests.

Replies copy the shapes of the real API as the ``openai`` package types them
(``ChatCompletion``, ``Response``, ``ImagesResponse``; speech is raw audio bytes), and
``tests/generation/test_openai_backends.py`` validates them against those types. Each test
queues the replies it wants per path; every request body is recorded for inspection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
IMAGES = "/v1/images/generations"
SPEECH = "/v1/audio/speech"
MODERATIONS = "/v1/moderations"
EMBEDDINGS = "/v1/embeddings"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Canned:
    """One scripted reply: a JSON document or raw bytes, after an optional delay."""

    body: dict[str, Any] | bytes
    status: int = 200
    content_type: str = "application/json"
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeOpenAI:
    base_url: str = ""
    queues: dict[str, deque[Canned]] = field(default_factory=lambda: defaultdict(deque))
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, path: str, *replies: Canned) -> None:
        with self._lock:
            self.queues[path].extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.queues.clear()
            self.received.clear()

    def bodies(self, path: str) -> list[Any]:
        return [r.json() for r in self.received if r.path == path]

    def unused(self) -> dict[str, int]:
        return {path: len(q) for path, q in self.queues.items() if q}

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.received.append(Received(request.url.path, dict(request.headers), body))
            queue = self.queues[request.url.path]
            reply = queue.popleft() if queue else None
        if reply is None:
            return JSONResponse(
                error_body(f"fake server: nothing queued for {request.url.path}", "test_error"),
                status_code=599,
            )
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if isinstance(reply.body, bytes):
            return Response(reply.body, reply.status, media_type=reply.content_type)
        return JSONResponse(reply.body, reply.status)


@contextmanager
def serving() -> Iterator[FakeOpenAI]:
    """Run a fresh fake in a background thread on a free loopback port."""
    fake = FakeOpenAI()
    paths = (CHAT, RESPONSES, IMAGES, SPEECH, MODERATIONS, EMBEDDINGS)
    app = Starlette(routes=[Route(p, fake.handle, methods=["POST"]) for p in paths])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-openai", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- reply bodies, shaped like the real API -------------------------------------------------


def error_body(message: str, kind: str = "server_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def chat_completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    model: str = "gpt-4o-mini-2024-07-18",
) -> dict[str, Any]:
    n = next(_ids)
    return {
        "id": f"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG{n:04d}",
        "object": "chat.completion",
        "created": 1741570283,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
    }


def response_object(
    text: str,
    *,
    status: str = "completed",
    incomplete_reason: str | None = None,
    refusal: str | None = None,
    model: str = "gpt-4.1-2025-04-14",
) -> dict[str, Any]:
    n = next(_ids)
    content: list[dict[str, Any]] = [
        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    ]
    if refusal is not None:
        content = [{"type": "refusal", "refusal": refusal}]
    return {
        "id": f"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3{n:04d}",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": model,
        "output": [
            {
                "id": f"msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3{n:04d}",
                "type": "message",
                "status": "incomplete" if status == "incomplete" else "completed",
                "content": content,
                "role": "assistant",
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 1210,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 412,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 1622,
        },
        "user": None,
        "metadata": {},
    }


def images_response(b64_png: str | None, *, url: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = {"b64_json": b64_png} if b64_png is not None else {"url": url}
    return {
        "created": 1713833628,
        "background": "opaque",
        "data": [image],
        "output_format": "png",
        "quality": "high",
        "size": "1536x1024",
        "usage": {
            "input_tokens": 50,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": 50},
            "output_tokens": 6208,
            "total_tokens": 6258,
        },
    }


MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip


def moderation_response(*flags: tuple[str, ...]) -> dict[str, Any]:
    """One result per input, flagged in the categories given (omni-moderation-latest shape)."""
    results = []
    for flagged in flags:
        categories = {name: name in flagged for name in MODERATION_CATEGORIES}
        results.append(
            {
                "flagged": bool(flagged),
                "categories": categories,
                "category_scores": {
                    name: 0.91 if on else 0.000012 for name, on in categories.items()
                },
                # Text input: every category was judged on the text.
                "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
            }
        )
    return {
        "id": f"modr-{next(_ids):032x}",
        "model": "omni-moderation-latest",
        "results": results,
    }


# --- canned replies per endpoint -------------------------------------------------------------


def chat(content: str | None, **kw: Any) -> Canned:
    return Canned(chat_completion(content, **kw))


def responses(text: str, **kw: Any) -> Canned:
    return Canned(response_object(text, **kw))


def failure(status: int = 500, message: str = "The server had an error") -> Canned:
    return Canned(error_body(message), status=status)


def slow(reply: Canned, delay_s: float) -> Canned:
    return Canned(reply.body, reply.status, reply.content_type, delay_s)


def embeddings_response(*vectors: list[float]) -> dict[str, Any]:
    """One embedding per input, as ``encoding_format="float"`` returns them."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": list(v)} for i, v in enumerate(vectors)
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8 * len(vectors), "total_tokens": 8 * len(vectors)},
    }


def embeddings(*vectors: list[float]) -> Canned:
    return Canned(embeddings_response(*vectors))


def moderation(*flags: tuple[str, ...]) -> Canned:
    return Canned(moderation_response(*flags))


def audio(wav: bytes) -> Canned:
    return Canned(wav, content_type="audio/wav")
