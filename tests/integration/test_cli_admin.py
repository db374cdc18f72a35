"""``hookline apps|endpoints|events|deliveries`` on a real SQLite file, through click."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hookline.cli import main
from hookline.cli.admin import parse_since
from hookline.store import AttemptResult, Store
from tests.support.pki import TestCa


@pytest.fixture
def fresh_db(tmp_path: Path) -> str:
    """The URL of a database not yet created."""
    return f"sqlite:///{tmp_path}/cli.db"


@pytest.fixture
def db(fresh_db: str) -> str:
    """A database set up as ``hookline migrate`` does (these commands create none)."""
    result = CliRunner().invoke(main, ["migrate", "--database", fresh_db])
    assert result.exit_code == 0, result.output
    return fresh_db


def hl(db: str, *args: str) -> Result:
    # Wide enough that rich never folds an id across lines.
    result = CliRunner(env={"COLUMNS": "250"}).invoke(main, [*args, "--database", db])
    assert result.exit_code == 0, result.output
    return result


def _field(output: str, name: str) -> str:
    found = re.search(rf"^{name}\s+(\S+)", output, re.MULTILINE)
    assert found, output
    return found[1]


def _new_app(db: str) -> str:
    return _field(hl(db, "apps", "create", "Acme").output, "id")


def _fail_all(db: str) -> None:
    """Play the engine: every due delivery gets one attempt that fails for good."""

    async def run() -> None:
        store = await Store.open(db)
        try:
            while jobs := await store.claim("cli-test", limit=100, default_cap=64, lease_margin=5):
                now = time.time()
                await store.record(
                    "cli-test",
                    [
                        AttemptResult(j, "failed", now, status_code=500, response_excerpt="boom")
                        for j in jobs
                    ],
                )
        finally:
            await store.close()

    asyncio.run(run())


def test_apps_create_list_show(db: str) -> None:
    created = hl(db, "apps", "create", "Acme").output
    app_id = _field(created, "id")
    assert _field(created, "api_key").startswith("hk_")
    assert app_id in hl(db, "apps", "list").output
    shown = hl(db, "apps", "show", app_id).output
    assert "Acme" in shown and "installations     0" in shown


def test_endpoints_create_update_disable_enable(db: str) -> None:
    app_id = _new_app(db)
    created = hl(
        db, "endpoints", "create", "--app", app_id, "--url", "https://example.com/hook",
        "--event", "order_completed", "--event", "product_created",
    ).output  # fmt: skip
    endpoint_id = re.search(r"ep_[0-9a-f]+", created)
    assert endpoint_id, created
    assert "order_completed, product_created" in created
    updated = hl(db, "endpoints", "update", endpoint_id[0], "--event", "*", "--timeout", "3")
    assert "all events" in updated.output and "3 s" in updated.output
    assert "disabled" in hl(db, "endpoints", "disable", endpoint_id[0]).output
    listed = hl(db, "endpoints", "list", "--app", app_id).output
    assert "disabled" in listed
    assert "enabled" in hl(db, "endpoints", "enable", endpoint_id[0]).output


def test_endpoint_headers_are_set_changed_and_shown_masked(db: str) -> None:
    app_id = _new_app(db)
    secret = "sk_live_0123456789abcdef"
    created = hl(
        db, "endpoints", "create", "--app", app_id, "--url", "https://example.com/hook",
        "--header", f"X-Api-Key: {secret}", "--bearer-token", "tok-0123456789abcdefXYZ",
    ).output  # fmt: skip
    assert "X-Api-Key: ••••cdef" in created and "Authorization: Bearer ••••fXYZ" in created
    endpoint_id = re.search(r"ep_[0-9a-f]+", created)
    assert endpoint_id, created
    updated = hl(
        db, "endpoints", "update", endpoint_id[0], "--basic-auth", "ops:pa55word",
    ).output  # fmt: skip
    assert "Authorization: Basic ••••" in updated and "X-Api-Key: ••••cdef" in updated
    removed = hl(db, "endpoints", "update", endpoint_id[0], "--remove-header", "x-api-key")
    assert "X-Api-Key" not in removed.output and "Basic ••••" in removed.output
    listed = hl(db, "endpoints", "list", "--app", app_id).output
    assert secret not in listed and "pa55word" not in listed

    args = ["endpoints", "update", endpoint_id[0], "--header", "Host: example.org"]
    refused = CliRunner().invoke(main, [*args, "--database", db])
    assert refused.exit_code != 0
    assert "the Host header is set by hookline" in refused.output


def test_an_endpoint_gets_a_client_certificate_from_files(db: str, tmp_path: Path) -> None:
    issued = TestCa().issue("client-a")
    (tmp_path / "cert.pem").write_text(issued.cert)
    (tmp_path / "key.pem").write_text(issued.key)
    app_id = _new_app(db)
    created = hl(
        db, "endpoints", "create", "--app", app_id, "--url", "https://example.com/hook",
        "--client-cert", str(tmp_path / "cert.pem"), "--client-key", str(tmp_path / "key.pem"),
    ).output  # fmt: skip
    assert issued.key.splitlines()[1] not in created
    args = ["endpoints", "create", "--app", app_id, "--url", "https://example.com/hook"]
    refused = CliRunner().invoke(
        main, [*args, "--client-cert", str(tmp_path / "key.pem"), "--client-key",
               str(tmp_path / "key.pem"), "--database", db],
    )  # fmt: skip
    assert refused.exit_code != 0 and "client_cert is not a certificate" in refused.output


def test_private_targets_need_the_flag(db: str) -> None:
    app_id = _new_app(db)
    args = ["endpoints", "create", "--app", app_id, "--url", "http://127.0.0.1:9/x"]
    refused = CliRunner().invoke(main, [*args, "--database", db])
    assert refused.exit_code == 2 and "private" in refused.output
    hl(db, *args, "--allow-private-targets")


def test_a_missing_app_is_a_clean_error(db: str) -> None:
    result = CliRunner().invoke(main, ["apps", "show", "app_nope", "--database", db])
    assert result.exit_code == 1
    assert "no app with id 'app_nope'" in result.output


def _app_with_failures(db: str, count: int) -> tuple[str, str]:
    app_id = _new_app(db)
    created = hl(
        db, "endpoints", "create", "--app", app_id, "--url", "https://example.com/hook",
    ).output  # fmt: skip
    endpoint = re.search(r"ep_[0-9a-f]+", created)
    assert endpoint
    for user in ("s0", "s1", "s2"):
        assert "installed" in hl(db, "apps", "install", app_id, user).output
    for i in range(count):
        out = hl(db, "events", "publish", "--type", "order_completed", "--user", f"s{i % 3}")
        assert "1 delivery(ies)" in out.output
    _fail_all(db)
    return app_id, endpoint[0]


def test_events_publish_is_idempotent_by_id(db: str) -> None:
    app_id, _ = _app_with_failures(db, 0)
    first = hl(db, "events", "publish", "--type", "product_created", "--user", "s0", "--id", "e1")
    again = hl(db, "events", "publish", "--type", "product_created", "--user", "s0", "--id", "e1")
    assert "e1: 1 delivery(ies)" in first.output
    assert "already published" in again.output
    listed = hl(db, "deliveries", "list", "--app", app_id).output
    assert listed.count("product_created") == 1


def test_deliveries_list_show_retry(db: str) -> None:
    app_id, _ = _app_with_failures(db, 2)
    listed = hl(db, "deliveries", "list", "--app", app_id, "--status", "failed").output
    ids = re.findall(r"^\s*(\d+)\s", listed, re.MULTILINE)
    assert len(ids) == 2 and "500" in listed
    shown = hl(db, "deliveries", "show", ids[0]).output
    assert "boom" in shown and "500" in shown and "failed" in shown
    retried = hl(db, "deliveries", "retry", *ids, "999999").output
    assert "2 delivery(ies) queued again; 1 left alone" in retried
    pending = hl(db, "deliveries", "list", "--app", app_id, "--status", "pending").output
    assert all(i in pending for i in ids)


def test_recover_resends_every_failed_delivery_with_a_progress_bar(db: str) -> None:
    app_id, endpoint_id = _app_with_failures(db, 7)
    out = hl(db, "deliveries", "recover", "--endpoint", endpoint_id, "--since", "1h").output
    assert "7 failed delivery(ies) queued again" in out
    assert "7/7" in out  # the bar's last frame
    assert "0 failed" in hl(db, "deliveries", "recover", "--app", app_id).output


def test_migrate_shows_progress_only_when_there_is_work(fresh_db: str) -> None:
    fresh = CliRunner().invoke(main, ["migrate", "--database", fresh_db])
    assert fresh.exit_code == 0, fresh.output
    assert "migrated" in fresh.output and "migrating to version" in fresh.output
    again = CliRunner().invoke(main, ["migrate", "--database", fresh_db])
    assert "up to date" in again.output and "migrating" not in again.output


def test_parse_since() -> None:
    assert parse_since("90m", now=10_000.0) == 10_000.0 - 5400
    assert parse_since("2d", now=200_000.0) == 200_000.0 - 172_800
    assert parse_since("1970-01-02T00:00") == 86_400
    with pytest.raises(Exception, match="use 90m"):
        parse_since("yesterday")


def test_apps_get_an_operator_url_that_hears_of_their_failed_deliveries(db: str) -> None:
    refused = CliRunner().invoke(
        main, ["apps", "create", "Acme", "--operator-url", "http://127.0.0.1/ops", "--database", db]
    )
    assert refused.exit_code != 0 and "--operator-url" in refused.output
    created = hl(
        db, "apps", "create", "Acme", "--operator-url", "http://127.0.0.1/ops",
        "--allow-private-targets",
    ).output  # fmt: skip
    app_id = _field(created, "id")
    assert _field(created, "operator_url") == "http://127.0.0.1/ops"
    hl(db, "apps", "install", app_id, "u1")
    hl(db, "endpoints", "create", "--app", app_id, "--url", "https://example.com/hook",
       "--event", "*")  # fmt: skip
    listed = hl(db, "endpoints", "list", "--app", app_id).output
    assert "operational" in listed and "http://127.0.0.1/ops" in listed
    hl(db, "events", "publish", "--type", "order_completed", "--user", "u1", "--data", "{}")
    _fail_all(db)  # the delivery fails for good: a delivery.failed goes to the operator URL
    failed = hl(db, "deliveries", "list", "--app", app_id, "--type", "delivery.failed").output
    assert failed.count("delivery.failed") == 1, "about the endpoint, none about itself"

    moved = hl(db, "apps", "update", app_id, "--name", "Acme 2", "--operator-url",
               "https://ops.example.com/hooks").output  # fmt: skip
    assert "Acme 2" in moved and _field(moved, "operator_url") == "https://ops.example.com/hooks"
    shown = hl(db, "apps", "show", app_id).output
    assert _field(shown, "operator_url") == "https://ops.example.com/hooks"
    cleared = hl(db, "apps", "update", app_id, "--no-operator-url").output
    assert _field(cleared, "operator_url") == "none"
    assert "operational" not in hl(db, "endpoints", "list", "--app", app_id).output
