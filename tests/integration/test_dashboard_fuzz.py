"""The dashboard's forms and query parameters fuzzed the way schemathesis fuzzes the API.

A real sender runs under uvicorn on a loopback port, on SQLite and on PostgreSQL (which
cannot store NUL in text). Signed in as the admin, with the session's CSRF token,
hypothesis sends every form field, query parameter and path parameter of every
dashboard route made-up values (any text, NUL and control characters, numbers beyond
64 bits, URLs, event types) beside real ones. No answer may be a 5xx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
import requests
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookline import web
from hookline.events import EVENT_TYPES, OPERATIONAL_EVENT_TYPES
from tests.support.api_server import ADMIN, api_in_thread

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
EDGES = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\t\n",
        "*",
        "order_completed",
        "99999999999999999999",
        "-1",
        "0",
        "1e400",
        "NaN",
        "https://hooks.example.com/x",
        "http://127.0.0.1:9/x",
        "//evil.example",
        "/apps",
        "x" * 3000,
        "ü" * 300,
    ]
)
VALUE = st.one_of(TEXT, EDGES, st.integers().map(str), st.sampled_from(EVENT_TYPES))
#: Values a field takes when it is used as meant, drawn half the time, so that the
#: handlers behind the refusals run too.
GOOD: dict[str, st.SearchStrategy[str]] = {
    "name": st.from_regex(r"[A-Za-z][A-Za-z ]{0,20}[a-z]", fullmatch=True),
    "user_id": st.from_regex(r"[A-Za-z0-9_.:@-]{1,20}", fullmatch=True),
    "event": st.sampled_from([*EVENT_TYPES, "*"]),
    "event_type": st.sampled_from([*EVENT_TYPES, *OPERATIONAL_EVENT_TYPES]),
    "url": st.sampled_from(["https://hooks.example.com/x", "http://hooks.example.com:8080/y"]),
    "operator_url": st.sampled_from(["", "https://ops.example.com/x", "http://127.0.0.1:9/x"]),
    "action": st.sampled_from(["test", "enable", "disable"]),
    "status": st.sampled_from(["pending", "delivered", "failed"]),
    "next": st.sampled_from(["/", "/apps"]),
    "rate_limit": st.sampled_from(["", "20", "0.5", "0.001", "10000", "1e3"]),
    "rate_limit_burst": st.sampled_from(["", "1", "5", "1000"]),
}


def _field(name: str) -> st.SearchStrategy[str]:
    good = GOOD.get(name)
    return st.one_of(good, VALUE) if good is not None else VALUE


@dataclass
class Site:
    base: str
    http: requests.Session
    csrf: str
    ids: dict[str, str]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]


@pytest.fixture(scope="module")
def site(module_database_url: str) -> Iterator[Site]:
    with api_in_thread(module_database_url, allow_private_targets=False) as base:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {ADMIN}"
        app = api.post(f"{base}/api/v1/apps", json={"name": "shop"}).json()
        api.post(f"{base}/api/v1/apps/{app['id']}/installations", json={"user_id": "u1"})
        endpoint = api.post(
            f"{base}/api/v1/apps/{app['id']}/endpoints",
            json={"url": "https://hooks.example.com/x", "event_types": ["*"]},
        ).json()
        api.post(
            f"{base}/api/v1/events",
            json={"event_type": "order_completed", "user_id": "u1", "data": {}},
        )
        deliveries = api.get(f"{base}/api/v1/apps/{app['id']}/deliveries").json()["data"]
        http = requests.Session()
        login_csrf = _csrf(http.get(f"{base}/login").text)
        page = http.post(f"{base}/login", data={"key": ADMIN, "csrf": login_csrf})
        ids = {
            "app_id": app["id"],
            "endpoint_id": endpoint["id"],
            "delivery_id": str(deliveries[0]["id"]),
        }
        yield Site(base, http, _csrf(page.text), ids)


def _path(template: str, values: dict[str, str]) -> str:
    return template.format(**{k: quote(v, safe="") for k, v in values.items()})


def _check(response: requests.Response) -> None:
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} -> {response.status_code}\n"
        f"{response.request.body!r}\n{response.text[:2000]}"
    )


def _param(site: Site, name: str) -> st.SearchStrategy[str]:
    """A path parameter: the real id half the time, anything otherwise."""
    real = site.ids.get(name)
    return st.one_of(st.just(real), VALUE) if real else _field(name)


# Each route, its path parameters and its fields (form fields for POST, query for GET).
ROUTES: list[tuple[str, str, list[str], list[str]]] = [
    ("POST", "/apps", [], ["name"]),
    ("POST", "/apps/{app_id}/installations", ["app_id"], ["user_id"]),
    ("POST", "/apps/{app_id}/operator-url", ["app_id"], ["operator_url"]),
    (
        "POST",
        "/apps/{app_id}/webhooks",
        ["app_id"],
        ["event", "url", "rate_limit", "rate_limit_burst"],
    ),
    (
        "POST",
        "/endpoints/{endpoint_id}/rate-limit",
        ["endpoint_id"],
        ["rate_limit", "rate_limit_burst"],
    ),
    ("POST", "/endpoints/{endpoint_id}/{action}", ["endpoint_id", "action"], ["event_type"]),
    ("POST", "/deliveries/{delivery_id}/retry", ["delivery_id"], ["next"]),
    ("GET", "/apps/{app_id}", ["app_id"], []),
    ("GET", "/endpoints/{endpoint_id}", ["endpoint_id"], []),
    (
        "GET",
        "/apps/{app_id}/deliveries",
        ["app_id"],
        ["status", "event_type", "endpoint_id", "user_id", "before"],
    ),
    ("GET", "/static/{name}", ["name"], []),
    ("GET", "/apps", [], ["cursor"]),
    ("GET", "/login", [], ["next"]),
    ("GET", "/", [], []),
]


@pytest.mark.parametrize(("method", "template", "params", "fields"), ROUTES)
def test_no_route_answers_5xx(
    site: Site, method: str, template: str, params: list[str], fields: list[str]
) -> None:
    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        values = {name: data.draw(_param(site, name), label=name) for name in params}
        # Every page also reads ``notice`` from its query, undeclared.
        names = [*fields, "notice"] if method == "GET" else fields
        form = {
            name: data.draw(_field(name), label=name)
            for name in names
            if data.draw(st.booleans(), label=f"send {name}")
        }
        url = site.base + _path(template, values)
        if method == "GET":
            _check(site.http.get(url, params=form, allow_redirects=False, timeout=30))
            return
        # The session's CSRF token mostly, so that the form reaches its handler.
        csrf = data.draw(st.one_of(st.just(site.csrf), VALUE), label="csrf")
        _check(site.http.post(url, data={**form, "csrf": csrf}, allow_redirects=False, timeout=30))

    check()


def test_every_route_and_field_is_fuzzed() -> None:
    """A route or a field added to the dashboard is fuzzed too, or this fails."""
    fuzzed = {(method, path): set(params) | set(fields) for method, path, params, fields in ROUTES}
    fuzzed[("POST", "/login")] = {"key", "next"}  # test_sign_in_form
    for route in web.router.routes:
        assert isinstance(route, APIRoute)
        method = next(iter(route.methods))
        if (method, route.path) == ("POST", "/logout"):
            continue  # it would end the session the other examples run in
        dependant = route.dependant
        names = {
            p.name
            for p in (*dependant.path_params, *dependant.query_params, *dependant.body_params)
        } - {"csrf"}
        assert fuzzed.get((method, route.path)) == names, (method, route.path, names)


def test_sign_in_form(site: Site) -> None:
    """The sign-in form, from a browser without a session."""

    @FUZZ
    @given(key=VALUE, csrf=VALUE, next_=VALUE, same=st.booleans())
    def check(key: str, csrf: str, next_: str, same: bool) -> None:
        http = requests.Session()
        login_csrf = _csrf(http.get(f"{site.base}/login").text)
        data = {"key": key, "csrf": login_csrf if same else csrf, "next": next_}
        _check(http.post(f"{site.base}/login", data=data, allow_redirects=False, timeout=30))

    check()


def test_the_fuzzed_values_reach_the_handlers(site: Site) -> None:
    """A sanity check of the setup: the session holds, so forms reach their handlers."""
    page = site.http.get(f"{site.base}/apps/{site.ids['app_id']}", allow_redirects=False)
    assert page.status_code == 200
