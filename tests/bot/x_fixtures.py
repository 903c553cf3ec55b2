"""Test helpers for the X adapter: spec validation, recorded traffic, a scripted X on loopback.

Every request the adapter sends through :class:`SpecSession` is validated against X's OpenAPI
description of API v2 (``tests/fixtures/x/x-api-v2-openapi.json``), and so is every 2xx
answer it receives, recorded or canned. Two adjustments to the spec, both about validation
rather than the API:

- every operation's ``security`` is narrowed to ``UserToken`` (OAuth 1.0a, what the adapter
  uses) and its scheme name lower-cased: openapi-core compares ``"oauth"`` from the header
  with the spec's literal ``"OAuth"``, and treats the ``oauth2`` alternative as always met;
- a multipart body is checked as the equivalent JSON body (``media`` base64, form fields
  typed by the schema): openapi-core 0.23 does not type multipart form fields.

Error answers are not checked against the spec: its ``Error``/``Problem`` schemas do not
describe what X sends (``type: about:blank``, ``reason: client-not-enrolled``). The error
bodies below are copied from real X answers quoted in public bug reports and logs.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import gzip
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIResponse
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "x"
SPEC_PATH = FIXTURES / "x-api-v2-openapi.json"
SPEC_HOST = "https://api.x.com"
SNOWFLAKE_EPOCH_MS = 1288834974657

# -- real error bodies ------------------------------------------------------------------

# POST /2/tweets with a text the account posted recently (akrherz/iembot#163, 2026-02).
DUPLICATE = {
    "detail": "You are not allowed to create a Tweet with duplicate content.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}
# A read endpoint outside the account's API tier (as logged by many clients, 2023–2025).
NOT_ENROLLED = {
    "client_id": "23074266",
    "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys "
    "and tokens from a Twitter developer App that is attached to a Project. You can create a "
    "project via the developer portal.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
}
TOO_MANY = {
    "title": "Too Many Requests",
    "detail": "Too Many Requests",
    "type": "about:blank",
    "status": 429,
}
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
UNAVAILABLE = {
    "title": "Service Unavailable",
    "detail": "Service Unavailable",
    "type": "about:blank",
    "status": 503,
}


def classic_bad_parameter(name: str) -> dict[str, Any]:
    """The 400 a server that only knows the older field names gives for ``name``."""
    known = "query,start_time,end_time,since_id,until_id,max_results,next_token,expansions"
    return {
        "errors": [
            {
                "parameters": {name: ["created_at"]},
                "message": f"[{name}] is not one of [{known},tweet.fields,user.fields]",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }


# -- recorded traffic ---------------------------------------------------------------------


def cassette(name: str) -> Path:
    path = FIXTURES / f"tweepy-{name}.yaml"
    if not path.exists():
        pytest.fail(f"recorded X traffic is missing: {path}", pytrace=False)
    return path


def recorded(name: str) -> list[tuple[dict[str, Any], Any]]:
    """(request, decoded JSON answer) for each interaction of a tweepy cassette."""
    with cassette(name).open() as fh:
        data = yaml.safe_load(fh)
    out = []
    for item in data["interactions"]:
        raw = item["response"]["body"]["string"]
        if isinstance(raw, bytes):  # v2 answers are stored gzip-compressed
            raw = gzip.decompress(raw)
        out.append((item["request"], json.loads(raw) if raw else None))
    return out


def combined_cassette(tmp_path: Path, *names: str) -> Path:
    """One cassette holding the interactions of several, for a call that spans them."""
    interactions: list[Any] = []
    for name in names:
        with cassette(name).open() as fh:
            interactions += yaml.safe_load(fh)["interactions"]
    path = tmp_path / "combined.yaml"
    path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}))
    return path


def snowflake(moment: datetime, seq: int = 0) -> str:
    """An X id created at ``moment`` (ids are time-ordered)."""
    return str(((int(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS) << 22) + seq)


def post(
    post_id: str,
    text: str,
    *,
    author_id: str,
    replied_to: str | None = None,
    conversation_id: str | None = None,
    created_at: str = "2026-03-01T20:05:00.000Z",
    likes: int = 0,
    reposts: int = 0,
    quotes: int = 0,
) -> dict[str, Any]:
    """A Post as the spec describes it (field names of the current reference)."""
    out: dict[str, Any] = {
        "id": post_id,
        "text": text,
        "edit_history_post_ids": [post_id],
        "author_id": author_id,
        "conversation_id": conversation_id or post_id,
        "created_at": created_at,
        "public_metrics": {
            "repost_count": reposts,
            "reply_count": 0,
            "like_count": likes,
            "quote_count": quotes,
            "bookmark_count": 0,
            "impression_count": 10,
        },
    }
    if replied_to is not None:
        out["referenced_posts"] = [{"type": "replied_to", "id": replied_to}]
    return out


def user(user_id: str, username: str, name: str) -> dict[str, Any]:
    return {"id": user_id, "username": username, "name": name}


# -- spec validation ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def spec_dict() -> dict[str, Any]:
    with SPEC_PATH.open() as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@lru_cache(maxsize=1)
def openapi() -> OpenAPI:
    data = json.loads(json.dumps(spec_dict()))
    data["components"]["securitySchemes"]["UserToken"]["scheme"] = "oauth"
    for item in data["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "security" in operation:
                operation["security"] = [{"UserToken": []}]
    return OpenAPI.from_dict(data, config=Config(spec_validator_cls=None))


def _operation(method: str, path: str) -> dict[str, Any]:
    for template, item in spec_dict()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            found: dict[str, Any] = item[method.lower()]
            return found
    raise AssertionError(f"{method} {path} is not in X's API v2 spec")


def _ref(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        found: dict[str, Any] = spec_dict()["components"]["schemas"][schema["$ref"].split("/")[-1]]
        return found
    return schema


@dataclass
class Sent:
    """One request as the adapter sent it, decoded for assertions."""

    method: str
    path: str
    query: dict[str, str]
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)


class _SpecRequest:
    """The openapi-core request protocol over a prepared request, on the spec's host."""

    def __init__(
        self,
        sent: Sent,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes | None,
        ctype: str,
    ) -> None:
        self.host_url = SPEC_HOST
        self.path = sent.path
        self.method = sent.method.lower()
        self.body = body
        self.content_type = ctype
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(headers),
            cookie=ImmutableMultiDict(),
        )


class SpecSession(requests.Session):
    """A requests session that validates each request and 2xx answer against the spec."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Sent] = []
        self.unchecked_answers: set[str] = set()  # paths whose answers are not spec-shaped

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        spec_request, sent = self._check(request)
        response = super().send(request, **kwargs)
        if response.ok and sent.path not in self.unchecked_answers:
            openapi().validate_response(spec_request, RequestsOpenAPIResponse(response))
        return response

    def _check(self, request: requests.PreparedRequest) -> tuple[_SpecRequest, Sent]:
        assert request.url is not None and request.method is not None
        url = urlsplit(request.url)
        query = parse_qs(url.query, keep_blank_values=True)
        sent = Sent(request.method, url.path, {k: v[0] for k, v in query.items()})
        headers = {
            k: v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()
        }
        raw = request.body
        body = raw.encode() if isinstance(raw, str) else raw if isinstance(raw, bytes) else None
        ctype = headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            sent.form = _parse_multipart(ctype, body or b"")
            schema = _ref(
                _operation(sent.method, sent.path)["requestBody"]["content"]["multipart/form-data"][
                    "schema"
                ]
            )
            as_json: dict[str, Any] = {}
            for name, value in sent.form.items():
                kind = schema["properties"].get(name, {}).get("type")
                if isinstance(value, bytes):
                    as_json[name] = base64.b64encode(value).decode()
                else:
                    as_json[name] = int(value) if kind == "integer" else value
            body, ctype = json.dumps(as_json).encode(), "application/json"
        elif ctype.startswith("application/json") and body:
            sent.json = json.loads(body)
        self.sent.append(sent)
        spec_request = _SpecRequest(sent, query, headers, body, ctype)
        openapi().validate_request(spec_request)
        return spec_request, sent

    def calls(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and s.path == path]


def _parse_multipart(ctype: str, body: bytes) -> dict[str, Any]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out[str(name)] = payload if part.get_filename() else payload.decode()
    return out


# -- a scripted X on loopback -------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeX:
    """An HTTP server on 127.0.0.1 answering scripted bodies per (method, path).

    Each route answers its queue in order and repeats the last answer. Unscripted requests
    get a 404 and are listed in ``unexpected``.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.unexpected: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                path = urlsplit(self.path).path
                queue = fake.routes.get((self.command, path))
                if not queue:
                    fake.unexpected.append(f"{self.command} {path}")
                    answer = Answer(404, {"title": "Not Found", "type": "about:blank"})
                else:
                    answer = queue.pop(0) if len(queue) > 1 else queue[0]
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
