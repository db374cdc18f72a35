"""Verification keys at rest: sealed with the master key when one is set, readable in
both forms side by side, re-sealed by ``hookline rotate-master-key``."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from hookline.cli import main
from hookline.exceptions import ConfigError
from hookline.store import NewEvent, Store
from hookline.store.sealing import KeyBox, new_master_key


async def stored_keys(store: Store) -> dict[str, str]:
    rows = await store.db.fetch("app_keys_after", after="", limit=100)
    return {row["id"]: row["verification_key"] for row in rows}


async def rotate(url: str, *args: str, env: dict[str, str]) -> str:
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["rotate-master-key", "--database", url, *args], env=env
    )
    assert result.exit_code == 0, result.output
    return result.output


async def test_keys_are_sealed_when_a_master_key_is_set_and_rotated_with_it(
    database_url: str,
) -> None:
    first, second = new_master_key(), new_master_key()
    plain_store = await Store.open(database_url, keys=KeyBox(None))
    plain_app, _ = await plain_store.create_app("plain")
    await plain_store.close()

    store = await Store.open(database_url, keys=KeyBox(first))
    try:
        sealed_app, _ = await store.create_app("sealed")
        rotated = await store.rotate_verification_key(sealed_app.id, grace=60)
        raw = await stored_keys(store)
        assert raw[plain_app.id] == plain_app.verification_key
        assert raw[sealed_app.id].startswith("fernet:")
        assert sealed_app.verification_key not in raw[sealed_app.id]
        # Both kinds read back in the clear, on the API's path and on the engine's.
        assert (await store.get_app(sealed_app.id)).verification_key == (
            sealed_app.verification_key
        )
        assert (await store.get_app(plain_app.id)).verification_key == (plain_app.verification_key)
        await store.install(sealed_app.id, "u1")
        await store.create_endpoint(
            sealed_app.id, url="http://127.0.0.1:9/", event_types=["*"], timeout=1
        )
        await store.publish([NewEvent("e1", "order_completed", "u1", "{}")])
        (job,) = await store.claim("w", limit=10, default_cap=10, lease_margin=5)
        assert job.keys == (sealed_app.verification_key, rotated.next_verification_key)
    finally:
        await store.close()

    without = await Store.open(database_url, keys=KeyBox(None))
    try:
        with pytest.raises(ConfigError, match="HOOKLINE_MASTER_KEY"):
            await without.get_app(sealed_app.id)
    finally:
        await without.close()

    output = await rotate(
        database_url, env={"HOOKLINE_MASTER_KEY_OLD": first, "HOOKLINE_MASTER_KEY": second}
    )
    assert "2 app(s)" in output
    store = await Store.open(database_url, keys=KeyBox(second))
    try:
        raw = await stored_keys(store)
        assert all(value.startswith("fernet:") for value in raw.values())
        for app in (plain_app, sealed_app):
            assert (await store.get_app(app.id)).verification_key == app.verification_key
        assert (await store.get_app(sealed_app.id)).next_verification_key == (
            rotated.next_verification_key
        )
    finally:
        await store.close()
    old_only = await Store.open(database_url, keys=KeyBox(first))
    try:
        with pytest.raises(ConfigError, match="another master key"):
            await old_only.get_app(plain_app.id)
    finally:
        await old_only.close()

    await rotate(database_url, "--decrypt", env={"HOOKLINE_MASTER_KEY_OLD": second})
    store = await Store.open(database_url, keys=KeyBox(None))
    try:
        raw = await stored_keys(store)
        assert raw == {a.id: a.verification_key for a in (plain_app, sealed_app)}
    finally:
        await store.close()


def test_a_master_key_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a master key"):
        KeyBox("too short")


async def test_endpoint_headers_are_sealed_and_resealed_with_the_master_key(
    database_url: str,
) -> None:
    """An endpoint's headers are kept like verification keys: sealed under the master
    key, opened for the engine only, re-sealed by ``rotate-master-key``."""
    first, second = new_master_key(), new_master_key()
    secret = "sk_live_0123456789abcdef"
    store = await Store.open(database_url, keys=KeyBox(first))
    try:
        app, _ = await store.create_app("shop")
        await store.install(app.id, "u1")
        endpoint = await store.create_endpoint(
            app.id,
            url="http://127.0.0.1:9/",
            event_types=["*"],
            timeout=1,
            headers={"X-Api-Key": secret},
            own_verification_key=True,
        )
        assert endpoint.headers == {"X-Api-Key": "••••cdef"}
        own_key = endpoint.verification_key
        assert own_key and own_key != app.verification_key
        (raw,) = await store.db.fetch("endpoint_secrets_after", after="", limit=10)
        assert raw["headers"].startswith("fernet:") and secret not in raw["headers"]
        await store.publish([NewEvent("e1", "order_completed", "u1", "{}")])
        (job,) = await store.claim("w", limit=10, default_cap=10, lease_margin=5)
        assert job.headers == (("X-Api-Key", secret),)
        assert job.keys == (own_key,)  # the endpoint's own key signs, not the app's
        assert raw["verification_key"].startswith("fernet:")
    finally:
        await store.close()

    output = await rotate(
        database_url, env={"HOOKLINE_MASTER_KEY_OLD": first, "HOOKLINE_MASTER_KEY": second}
    )
    assert "1 endpoint(s): headers now sealed with the new master key" in output
    store = await Store.open(database_url, keys=KeyBox(second))
    try:
        (raw,) = await store.db.fetch("endpoint_secrets_after", after="", limit=10)
        assert KeyBox(second).open(raw["headers"]) == f'{{"X-Api-Key":"{secret}"}}'
        reread = await store.get_endpoint(endpoint.id)
        assert reread.headers == {"X-Api-Key": "••••cdef"}
        assert reread.verification_key == own_key
    finally:
        await store.close()
