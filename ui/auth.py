"""API keys: who may call the server, and who may change what it serves.

Keys come from RAG_API_KEYS (comma-separated) or a key file (`rag serve --api-key-file`, one a line, # for
comments); each is `admin:KEY`, `read:KEY` or a bare `KEY` (read-only). A read-only key may ask, retrieve and
list; an admin key may also upload, delete and create collections. When keys are set, `ApiKeyMiddleware`
guards every route on the port: /v1, /api, /docs and all of Gradio's (its page, config, upload, queue and
file routes). A request shows its key as `Authorization: Bearer KEY` (what the openai package sends),
`X-API-Key: KEY`, or the cookie the key page sets for a browser (asked once per browser).

Only the SHA-256 of each key is kept, and a presented key is compared with every one of them with
hmac.compare_digest, so neither the time taken nor a log line or a traceback gives a key away.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rag.errors import RagError

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")
KEYS_VARIABLE = "RAG_API_KEYS"
# A key is a password a client sends on every request; below 16 characters one could be guessed over the
# network (16 random base64 characters are 96 bits).
MIN_KEY_CHARS = 16
COOKIE = "rag_api_key"
COOKIE_MAX_AGE_S = 365 * 24 * 3600  # the browser is asked once; a key that is withdrawn stops working anyway
KEY_PAGE = "/_auth/key"  # the page where a browser enters its key (outside Gradio's and the API's paths)
LOGOUT_PAGE = "/_auth/logout"
MAX_PEEKED_BODY = 1024 * 1024  # a Gradio queue request is a few KB of JSON; more is not one
MAX_KEY_FORM_BYTES = 4096  # the key page's form: one key
# The Gradio events that change the index: a read-only key may not fire them (see gradio_admin_fns).
GRADIO_ADMIN_EVENTS = ("upload", "remove")
GRADIO_PREFIX = "/gradio_api"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiKeyError(RagError, ValueError):
    """A key list that cannot be used (a key too short, an unknown role)."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys, as SHA-256 digests with their roles; empty means the server is open."""

    entries: tuple[tuple[bytes, Role], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __repr__(self) -> str:  # never the digests either
        admins = sum(1 for _, r in self.entries if r == "admin")
        return f"ApiKeys({len(self.entries)} keys, {admins} admin)"

    def role_of(self, presented: str | None) -> Role | None:
        """The role of a presented key, or None; compares with every key in constant time."""
        if not presented:
            return None
        digest = _digest(presented)
        found: Role | None = None
        for known, role in self.entries:
            if hmac.compare_digest(digest, known) and (found is None or role == "admin"):
                found = role
        return found

    @classmethod
    def parse(cls, lines: Iterable[str], source: str) -> ApiKeys:
        """Keys from `admin:KEY` / `read:KEY` / `KEY` entries; blank entries and # comments are skipped."""
        entries: list[tuple[bytes, Role]] = []
        for n, raw in enumerate(lines, 1):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            role_name, sep, key = entry.partition(":")
            if not sep or role_name not in ROLES:
                role_name, key = "read", entry
            if any(ch.isspace() for ch in key) or len(key) < MIN_KEY_CHARS:
                raise ApiKeyError(
                    f"{source}, entry {n}: a key needs at least {MIN_KEY_CHARS} characters and no spaces "
                    '(make one with: python -c "import secrets; print(secrets.token_urlsafe(24))")'
                )
            role: Role = "admin" if role_name == "admin" else "read"
            entries.append((_digest(key), role))
        return cls(tuple(entries))


def api_keys_from(environ: Mapping[str, str], key_file: str | Path | None = None) -> ApiKeys:
    """The keys of RAG_API_KEYS and of key_file together (either may be absent)."""
    keys = ApiKeys.parse(environ.get(KEYS_VARIABLE, "").split(","), KEYS_VARIABLE)
    if key_file is None:
        return keys
    try:
        text = Path(key_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ApiKeyError(f"cannot read the API key file {key_file}: {exc.strerror or exc}") from None
    from_file = ApiKeys.parse(text.splitlines(), str(key_file))
    if not from_file:
        raise ApiKeyError(
            f"the API key file {key_file} holds no key; add lines like admin:<key> or read:<key>"
        )
    return ApiKeys(keys.entries + from_file.entries)


def is_loopback(host: str) -> bool:
    """Whether binding host serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: ApiKeys) -> None:
    """Refuse to serve another machine than this one without keys."""
    if not keys and not is_loopback(host):
        raise ApiKeyError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could read and change "
            f"the documents. Set {KEYS_VARIABLE}=admin:<key> (or --api-key-file FILE), or bind 127.0.0.1"
        )


def gradio_admin_fns(blocks: Any, api_names: Iterable[str] = GRADIO_ADMIN_EVENTS) -> frozenset[int]:
    """The ids (the queue's fn_index) of a Gradio app's events that change the index."""
    names = set(api_names)
    return frozenset(int(i) for i, fn in blocks.fns.items() if getattr(fn, "api_name", None) in names)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request shows: Authorization: Bearer, X-API-Key, or the key page's cookie."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if headers.get("x-api-key"):
        return headers["x-api-key"].strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return urllib.parse.unquote(value)
    return None


def error_body(status: int, code: str, message: str) -> bytes:
    """The JSON error envelope of the API (OpenAI's shape): {"error": {"message", "type", "code"}}."""
    kind = {401: "authentication_error", 403: "permission_error", 413: "invalid_request_error"}.get(
        status, "invalid_request_error"
    )
    return json.dumps(
        {"error": {"message": message, "type": kind, "code": code}}, ensure_ascii=False
    ).encode()


MISSING = (
    "missing_api_key",
    "this server needs an API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
    "(a browser is asked for it); ask the server's administrator for a key",
)
INVALID = (
    "invalid_api_key",
    "the API key is not valid: check it for typos, or ask the server's administrator for a current one",
)
READ_ONLY = (
    "read_only_key",
    "this API key may ask, retrieve and list, not change documents or collections: use an admin key",
)


class ApiKeyMiddleware:
    """ASGI middleware in front of everything on the port. With no keys it lets every request through as
    admin; otherwise a request without a valid key gets 401 (a browser asking for a page is sent to the key
    page instead), and a read-only key gets 403 on Gradio's upload route and its index-changing events.
    The role is left in scope["state"]["api_role"] for the API's own admin-only routes."""

    def __init__(
        self,
        app: ASGIApp,
        keys: ApiKeys,
        *,
        root_path: str = "",
        gradio_admin_fn_ids: Iterable[int] = (),
        secure_cookie: bool = False,
    ) -> None:
        self.app = app
        self.keys = keys
        self.root_path = root_path.rstrip("/")
        self.admin_fns = frozenset(gradio_admin_fn_ids)
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self.keys:
            state["api_role"] = "admin"
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["type"] == "http" and path in (KEY_PAGE, LOGOUT_PAGE):
            await self._key_page(scope, receive, send, headers)
            return
        presented = presented_key(headers)
        role = self.keys.role_of(presented)
        if role is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            if scope.get("method") == "GET" and "text/html" in headers.get("accept", ""):
                target = (
                    self.root_path
                    + path
                    + (f"?{scope['query_string'].decode()}" if scope.get("query_string") else "")
                )
                await _redirect(send, f"{self.root_path}{KEY_PAGE}?next={urllib.parse.quote(target)}")
                return
            code, message = MISSING if presented is None else INVALID
            await _json(send, 401, error_body(401, code, message), {"www-authenticate": "Bearer"})
            return
        state["api_role"] = role
        if role != "admin" and scope["type"] == "http":
            needs_admin, receive = await self._gradio_needs_admin(scope, receive)
            if needs_admin:
                await _json(send, 403, error_body(403, *READ_ONLY))
                return
        await self.app(scope, receive, send)

    async def _gradio_needs_admin(self, scope: Scope, receive: Receive) -> tuple[bool, Receive]:
        """Whether a request fires one of Gradio's index-changing routes or events; the queue's requests name
        the event in their body, which is read here and handed on unchanged."""
        path = re.sub("/{2,}", "/", _route_path(scope))
        if not path.startswith(GRADIO_PREFIX) or scope.get("method") != "POST":
            return False, receive
        rest = path[len(GRADIO_PREFIX) :].rstrip("/")
        if rest == "/upload":
            return True, receive
        parts = rest.split("/")
        # /run/NAME, /api/NAME, /call/NAME, /call/v2/NAME
        if len(parts) >= 3 and parts[1] in ("run", "api", "call"):
            return parts[-1] in GRADIO_ADMIN_EVENTS, receive
        if rest != "/queue/join":
            return False, receive
        body, replay = await _read_body(receive, MAX_PEEKED_BODY)
        if body is None:
            return True, replay  # too big to be a queue request: not let through on a read key
        try:
            fn_index = json.loads(body).get("fn_index")
        except (ValueError, AttributeError):
            return False, replay  # Gradio answers a malformed body itself
        return (fn_index is None or fn_index in self.admin_fns), replay

    async def _key_page(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        """GET: a form asking for the key; POST: check it, set the cookie, go on to `next`."""
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        target = _local_target(query.get("next", [""])[0], self.root_path)
        cookie_path = self.root_path or "/"
        if _route_path(scope) == LOGOUT_PAGE:
            await _redirect(
                send, f"{self.root_path}{KEY_PAGE}", _cookie("", cookie_path, 0, self.secure_cookie)
            )
            return
        if scope.get("method") != "POST":
            await _html(send, 200, _key_form(target, ""))
            return
        body, _ = await _read_body(receive, MAX_KEY_FORM_BYTES)
        form = urllib.parse.parse_qs((body or b"").decode("utf-8", "replace"))
        key = form.get("key", [""])[0].strip()
        target = _local_target(form.get("next", [target])[0], self.root_path)
        if self.keys.role_of(key) is None:
            await _html(send, 401, _key_form(target, "密钥不正确，请重新输入。"))
            return
        await _redirect(send, target, _cookie(key, cookie_path, COOKIE_MAX_AGE_S, self.secure_cookie))


def _route_path(scope: Scope) -> str:
    """The request's path below the server's root path (what the routes see)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _local_target(target: str, root_path: str) -> str:
    """Where to go after the key page: a path on this server only (never another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return (root_path or "") + "/"
    return target


def _cookie(key: str, path: str, max_age: int, secure: bool) -> str:
    value = urllib.parse.quote(key, safe="")
    return f"{COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict" + (
        "; Secure" if secure else ""
    )


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """The whole request body (None when over limit) and a receive that hands it on once more."""
    chunks: list[bytes] = []
    size = 0
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit or not message.get("more_body", False):
            break
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return (None if size > limit else b"".join(chunks)), replay


async def _respond(send: Send, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, body: bytes, extra: Mapping[str, str] | None = None) -> None:
    await _respond(send, status, body, {"content-type": "application/json", **(extra or {})})


async def _html(send: Send, status: int, page: str) -> None:
    headers = {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "x-frame-options": "DENY",
    }
    await _respond(send, status, page.encode("utf-8"), headers)


async def _redirect(send: Send, location: str, cookie: str | None = None) -> None:
    headers = {"location": location, "cache-control": "no-store"}
    if cookie is not None:
        headers["set-cookie"] = cookie
    await _respond(send, 303, b"", headers)


def _key_form(target: str, problem: str) -> str:
    shown = f'<p class="problem">{html.escape(problem)}</p>' if problem else ""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>输入访问密钥</title>
<style>body{{font-family:system-ui,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;max-width:28rem;
margin:12vh auto;padding:0 1rem}}input{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}
button{{margin-top:.8rem;padding:.5rem 1.2rem;font-size:1rem}}.problem{{color:#b42318}}</style></head>
<body><h1>中文文档问答</h1><p>这个服务需要访问密钥。请输入管理员给你的密钥（本浏览器只需输入一次）。</p>{shown}
<form method="post" action="">
<input type="password" name="key" autocomplete="current-password" autofocus required aria-label="访问密钥">
<input type="hidden" name="next" value="{html.escape(target)}">
<button type="submit">进入</button></form></body></html>"""
