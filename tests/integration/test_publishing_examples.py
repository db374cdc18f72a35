"""The examples of docs/publishing.md, run as written on real PostgreSQL.

They live in docs/examples/, and the page shows each file whole: a test checks that the
page's copy is the file, so what the page shows is what runs here. Each runs twice, with
hookline's tables in the platform's database (schema ``hookline``) and with an outbox
there instead: the same code publishes both ways.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

from hookline.outbox import source
from hookline.store import Store
from tests.conftest import fresh_postgres

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "publishing.md"
EXAMPLES = ROOT / "docs" / "examples"

#: An example on the page: a marker naming its file, then the file in a python block.
_SHOWN = re.compile(r"<!-- example: (\S+) -->\n+```python\n(.*?)```", re.DOTALL)


def test_the_page_shows_each_example_file_as_it_is() -> None:
    shown = dict(_SHOWN.findall(PAGE.read_text()))
    assert set(shown) == {f"docs/examples/{p.name}" for p in EXAMPLES.glob("*.py")}, (
        "every example file is on the page, and every example on the page is a file"
    )
    for path, text in shown.items():
        assert text == (ROOT / path).read_text(), f"{path} differs from the page's copy"


@pytest.fixture(params=["tables", "outbox"])
async def platform(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    """The platform's database (URL) and where hookline is in it: its tables in schema
    ``hookline`` (as `hookline migrate --database URL?schema=hookline` makes them, with
    a store that installed an app), or an outbox."""
    require = request.param
    async with fresh_postgres() as url:
        if require == "tables":
            store = await Store.open(url + "?schema=hookline")
            try:
                app, _ = await store.create_app("Shop app")
                await store.install(app.id, "store-42")
                await store.create_endpoint(
                    app.id, url="http://127.0.0.1:9/hook", event_types=["*"], timeout=5
                )
            finally:
                await store.close()
        else:
            await source.install(url)
        yield url, require


async def _published(url: str, layout: str) -> list[str]:
    """The event ids hookline has from the platform: its events, or the outbox's rows."""
    conn = await asyncpg.connect(url)
    try:
        if layout == "tables":
            sql = "SELECT id FROM hookline.events ORDER BY seq"
        else:
            sql = "SELECT event_id AS id FROM hookline.outbox ORDER BY id"
        return [row["id"] for row in await conn.fetch(sql)]
    finally:
        await conn.close()


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = pytest.mark.postgres


async def test_the_sqlalchemy_example(platform: tuple[str, str]) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    url, layout = platform
    example = _load("sqlalchemy_orders.py")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        example.Base.metadata.create_all(engine)
        with Session(engine) as session:
            order = example.complete_order(session, "o-1", "store-42", 1200)
            assert order.id == "o-1"
        with Session(engine) as session:
            # The same order again fails at the commit: its event goes with it.
            with pytest.raises(IntegrityError):
                example.complete_order(session, "o-1", "store-42", 1200)
    finally:
        engine.dispose()
    assert await _published(url, layout) == ["order-o-1-completed"]


#: Runs the Django example in a process of its own: Django's settings are the process's.
_DJANGO = """
import importlib.util, os, sys
from urllib.parse import urlsplit

import django
from django.conf import settings

url = urlsplit(os.environ["PLATFORM_URL"])
settings.configure(DATABASES={"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": url.path.lstrip("/"),
    "USER": url.username, "HOST": url.hostname, "PORT": str(url.port),
}})
django.setup()
spec = importlib.util.spec_from_file_location("django_orders", sys.argv[1])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)

from django.db import IntegrityError, connection
with connection.schema_editor() as editor:
    editor.create_model(example.Order)
assert example.complete_order("o-1", "store-42", 1200).id == "o-1"
try:
    example.complete_order("o-1", "store-42", 1200)
except IntegrityError:
    print("the same order again: rolled back")
"""


async def test_the_django_example(platform: tuple[str, str]) -> None:
    url, layout = platform
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    done = subprocess.run(
        [sys.executable, "-c", _DJANGO, str(EXAMPLES / "django_orders.py")],
        env={**env, "PLATFORM_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "rolled back" in done.stdout
    assert await _published(url, layout) == ["order-o-1-completed"]
