"""API keys: parsing and roles, then a real server with keys (web chat mounted) and real clients: httpx,
the openai package and gradio_client, without a key, with a wrong one, a read-only one and an admin one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from api_support import ADMIN_KEY, KEYS_ENV, READ_KEY, api_app, seeds_data_dir, serving

from rag.collections import Collections
from rag.engine import Engine
from ui.auth import COOKIE, KEY_PAGE, ApiKeyError, ApiKeys, api_keys_from, check_bind, is_loopback

# ------------------------------------------------------------------------------------------- keys alone


def test_roles_from_the_variable_and_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# team keys\nadmin:file-admin-key-0123456789\n\nfile-read-key-0123456789\n")
    keys = api_keys_from(KEYS_ENV, key_file)
    assert keys.role_of(ADMIN_KEY) == "admin"
    assert keys.role_of(READ_KEY) == "read"
    assert keys.role_of("file-admin-key-0123456789") == "admin"
    assert keys.role_of("file-read-key-0123456789") == "read"  # a bare key is read-only
    assert keys.role_of(ADMIN_KEY[:-1]) is None
    assert keys.role_of("") is None and keys.role_of(None) is None
    assert ADMIN_KEY not in repr(keys) and "4 keys, 2 admin" in repr(keys)


def test_no_keys_means_an_open_server() -> None:
    assert not api_keys_from({})
    assert not api_keys_from({"RAG_API_KEYS": " , "})


@pytest.mark.parametrize("entry", ["admin:short", "has space in the key 0123456789", "admin:"])
def test_weak_keys_are_refused_with_how_to_make_one(entry: str) -> None:
    with pytest.raises(ApiKeyError, match="secrets.token_urlsafe"):
        api_keys_from({"RAG_API_KEYS": entry})


def test_an_empty_or_missing_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ApiKeyError, match="holds no key"):
        api_keys_from({}, tmp_path / "empty")
    with pytest.raises(ApiKeyError, match="cannot read"):
        api_keys_from({}, tmp_path / "missing")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.5", False), ("example.org", False)],
)  # fmt: skip
def test_only_loopback_is_served_without_keys(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_bind(host, ApiKeys())
    else:
        with pytest.raises(ApiKeyError, match="refusing to listen"):
            check_bind(host, ApiKeys())
    check_bind(host, api_keys_from(KEYS_ENV))


# ------------------------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def url(seeds_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = seeds_data_dir(seeds_engine, tmp_path_factory.mktemp("keys") / "data")
    app = api_app(Collections(data, seeds_engine.settings), keys=api_keys_from(KEYS_ENV))
    with serving(app) as base:
        yield base


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


GUARDED = [
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/api/collections"),
    ("POST", "/api/collections/default/ask"),
    ("GET", "/openapi.json"),
    ("GET", "/config"),
    ("GET", "/gradio_api/info"),
    ("POST", "/gradio_api/upload"),
    ("POST", "/gradio_api/queue/join"),
    ("GET", "/gradio_api/queue/data?session_hash=x"),
    ("GET", "/gradio_api/file=/etc/hostname"),
    ("GET", "/healthz"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_every_route_needs_a_key(url: str, method: str, path: str) -> None:
    missing = httpx.request(method, url + path, timeout=30)
    assert missing.status_code == 401, (path, missing.text)
    assert (
        missing.json()["error"]["code"] == "missing_api_key"
        and "Bearer" in missing.json()["error"]["message"]
    )
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = httpx.request(method, url + path, headers=bearer("wrong-key-0123456789abcdef"), timeout=30)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.slow
def test_the_right_key_is_let_in_by_any_of_its_headers(url: str) -> None:
    assert httpx.get(f"{url}/api/collections", headers=bearer(READ_KEY)).status_code == 200
    assert httpx.get(f"{url}/api/collections", headers={"X-API-Key": READ_KEY}).status_code == 200
    assert httpx.get(f"{url}/config", headers=bearer(READ_KEY)).status_code == 200
    assert httpx.get(f"{url}/healthz", headers=bearer(READ_KEY)).json()["status"] == "ok"


@pytest.mark.slow
def test_the_openai_package_needs_a_valid_key(url: str) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=f"{url}/v1", api_key="not-a-key", max_retries=0).models.list()
    assert refused.value.code == "invalid_api_key"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=READ_KEY, max_retries=0, timeout=120)
    reply = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "左云县有多少家活性炭企业?"}]
    )
    assert "14" in (reply.choices[0].message.content or "")


@pytest.mark.slow
def test_a_read_only_key_cannot_change_anything(url: str) -> None:
    read = bearer(READ_KEY)
    for method, path, kwargs in [
        ("POST", "/api/collections", {"json": {"name": "made_by_reader"}}),
        ("DELETE", "/api/collections/zuoquan", {}),
        ("POST", "/api/collections/zuoquan/documents", {"files": [("files", ("a.txt", "左权县".encode()))]}),
        ("DELETE", "/api/collections/zuoquan/documents/000_8e3a739afda006bb.txt", {}),
        ("POST", "/gradio_api/upload", {"files": [("files", ("a.txt", "左权县".encode()))]}),
    ]:
        refused = httpx.request(method, url + path, headers=read, timeout=30, **kwargs)  # type: ignore[arg-type]
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "read_only_key"
    listed = httpx.get(f"{url}/api/collections", headers=read).json()["collections"]
    assert [c["name"] for c in listed] == ["default", "zuoquan", "zuoyun"]
    assert listed[1]["documents"] == 1


@pytest.mark.slow
def test_an_admin_key_can(url: str) -> None:
    admin = bearer(ADMIN_KEY)
    created = httpx.post(f"{url}/api/collections", json={"name": "made_by_admin"}, headers=admin, timeout=60)
    assert created.status_code == 201, created.text
    assert httpx.delete(f"{url}/api/collections/made_by_admin", headers=admin).status_code == 200


@pytest.mark.slow
def test_gradio_client_needs_a_key_and_a_read_key_cannot_upload(url: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    with pytest.raises(ValueError, match="credentials were not provided"):
        Client(url + "/", verbose=False, analytics_enabled=False)
    client = Client(
        url + "/", verbose=False, analytics_enabled=False, headers=bearer(READ_KEY), download_files=False
    )
    answer = client.predict("左云县有多少家活性炭企业?", "extractive", api_name="/ask")[1]
    assert answer["found"] and "14" in answer["text"]
    doc = tmp_path / "reader.txt"
    doc.write_text("读者上传的文件。", encoding="utf-8")
    with pytest.raises(Exception, match="403|read_only_key"):
        client.predict([handle_file(str(doc))], api_name="/upload")
    with pytest.raises(Exception, match="403|read_only_key"):
        client.predict("000_8e3a739afda006bb.txt", api_name="/remove")
    client.close()


@pytest.mark.slow
def test_a_browser_is_asked_for_the_key_once(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as browser:
        page = browser.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith(KEY_PAGE)
        form = browser.get(page.headers["location"])
        assert form.status_code == 200 and 'name="key"' in form.text and "密钥" in form.text
        wrong = browser.post(KEY_PAGE, data={"key": "nope", "next": "/"})
        assert wrong.status_code == 401 and "不正确" in wrong.text
        right = browser.post(KEY_PAGE, data={"key": READ_KEY, "next": "//evil.example/"})
        assert right.status_code == 303 and right.headers["location"] == "/"  # never another site
        assert "HttpOnly" in right.headers["set-cookie"] and COOKIE in browser.cookies
        assert browser.get("/", headers={"Accept": "text/html"}).status_code == 200
        assert browser.get("/config").status_code == 200


def test_rag_serve_refuses_another_address_without_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag.cli import main

    monkeypatch.delenv("RAG_API_KEYS", raising=False)
    assert main(["serve", "--data", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0" in err and "RAG_API_KEYS" in err
    (tmp_path / "keys").write_text("short\n")
    assert (
        main(
            ["serve", "--data", str(tmp_path), "--host", "0.0.0.0", "--api-key-file", str(tmp_path / "keys")]
        )
        == 2
    )
    assert "at least 16 characters" in capsys.readouterr().err
