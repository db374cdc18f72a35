"""Dashboard sessions and the admin token: nothing in a cookie to guess against, sessions
that survive a restart when a secret is set, Secure cookies behind a TLS proxy, and no
start with a guessable admin token."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

from hookline.cli import main
from hookline.exceptions import ConfigError
from hookline.server import create_server
from hookline.web.session import SessionSigner, credential_hash, session_secret
from tests.support.api_server import ADMIN, running_api


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]


async def _sign_in(base: str) -> aiohttp.ClientResponse:
    # Cookies passed by hand: a client keeps a Secure cookie for HTTPS only, and here the
    # TLS proxy is left out.
    async with aiohttp.ClientSession(base, cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get("/login") as response:
            csrf = _csrf(await response.text())
            login = response.cookies["hookline_login"].value
        data = {"key": ADMIN, "csrf": csrf}
        headers = {"Cookie": f"hookline_login={login}"}
        async with http.post(
            "/login", data=data, headers=headers, allow_redirects=False
        ) as response:
            assert response.status == 303
            return response


def _payload(cookie: str) -> dict[str, object]:
    payload = cookie.rpartition(".")[0]
    decoded: dict[str, object] = orjson.loads(base64.urlsafe_b64decode(payload))
    return decoded


async def test_a_cookie_holds_nothing_to_test_guesses_against(sqlite_url: str) -> None:
    async with running_api(sqlite_url, deliver=False) as base:
        response = await _sign_in(base)
    cookie = response.cookies["hookline_session"].value
    payload = _payload(cookie)
    unkeyed = hashlib.sha256(ADMIN.encode()).hexdigest()
    assert payload["fp"] != unkeyed
    assert unkeyed not in cookie and ADMIN not in cookie
    # The fingerprint is keyed: another server's secret makes another one.
    assert SessionSigner(b"a" * 32).fingerprint(unkeyed) != payload["fp"]


async def test_secure_cookies_behind_a_tls_proxy(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_api(sqlite_url, deliver=False) as base:
        assert not (await _sign_in(base)).cookies["hookline_session"]["secure"]
    monkeypatch.setenv("HOOKLINE_COOKIE_SECURE", "1")
    async with running_api(sqlite_url, deliver=False) as base:
        assert (await _sign_in(base)).cookies["hookline_session"]["secure"]


@pytest.mark.parametrize(
    "env",
    [
        {"HOOKLINE_SESSION_SECRET": "s" * 16 + "e" * 16},
        {"HOOKLINE_MASTER_KEY": "a master key, as sealing takes it"},
    ],
)
def test_sessions_survive_a_restart_with_a_secret(env: dict[str, str]) -> None:
    before, after = SessionSigner(session_secret(env)), SessionSigner(session_secret(env))
    session = before.new("admin", credential_hash(ADMIN))
    assert after.loads(before.dumps(session)) == session


def test_sessions_end_with_the_process_without_a_secret() -> None:
    before, after = SessionSigner(session_secret({})), SessionSigner(session_secret({}))
    assert after.loads(before.dumps(before.new("admin", credential_hash(ADMIN)))) is None


def test_a_short_session_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="HOOKLINE_SESSION_SECRET is shorter than 32"):
        session_secret({"HOOKLINE_SESSION_SECRET": "short"})


WEAK = ["secret-admin", "x" * 40, "abcabcabcabcabcabcabcabcabc", ""]


@pytest.mark.parametrize("token", WEAK)
def test_a_weak_admin_token_is_refused(token: str) -> None:
    with pytest.raises(ConfigError, match=r"secrets.token_urlsafe\(32\)"):
        create_server(database_url="sqlite:///unused.db", admin_token=token)


@pytest.mark.parametrize("token", WEAK[:3])
def test_serve_refuses_a_weak_admin_token_in_one_line(token: str, tmp_path: Path) -> None:
    database = tmp_path / "hookline.db"
    result = CliRunner(env={"HOOKLINE_ADMIN_TOKEN": token}).invoke(
        main, ["serve", "--database", f"sqlite:///{database}", "--port", "0"]
    )
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "HOOKLINE_ADMIN_TOKEN is too weak" in lines[0], result.output
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in lines[0]
    assert not database.exists()


@pytest.mark.parametrize("secret", [True, False])
async def test_a_session_across_a_restart(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, secret: bool
) -> None:
    if secret:
        monkeypatch.setenv("HOOKLINE_SESSION_SECRET", "a-session-secret-" + "q" * 20)
    async with running_api(sqlite_url, deliver=False) as base:
        cookie = (await _sign_in(base)).cookies["hookline_session"].value
    async with (
        running_api(sqlite_url, deliver=False) as base,
        aiohttp.ClientSession(base, cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.get(
            "/apps", headers={"Cookie": f"hookline_session={cookie}"}, allow_redirects=False
        ) as response,
    ):
        assert response.status == (200 if secret else 303)
