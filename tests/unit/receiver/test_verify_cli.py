"""``hookline verify``: every check reported, exit status 1 when the receiver would refuse."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hookline.cli import main
from hookline.receiver.diagnose import diagnose, load_request
from hookline.receiver.samples import signed_sample

KEY = "k-123"


def _save(tmp_path: Path, headers: dict[str, str], body: bytes) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps({"headers": headers, "body": body.decode()}))
    return path


def _verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    return result.exit_code, result.output


def test_a_good_request_is_valid(tmp_path: Path) -> None:
    path = _save(tmp_path, *signed_sample([KEY], "order_completed"))
    code, out = _verify(str(path), "--key", KEY)
    assert code == 0, out
    assert "X-Selz-Signature: matches key #1" in out
    assert "webhook-signature: matches key #1" in out
    assert out.strip().endswith("valid: the receiver would accept this request")


def test_the_wrong_key_is_named_and_the_expected_signature_shown(tmp_path: Path) -> None:
    path = _save(tmp_path, *signed_sample(["another"], "order_completed"))
    code, out = _verify(str(path), "--key", KEY)
    assert code == 1
    assert "FAIL  X-Selz-Signature" in out and "with key #1 it would be" in out
    assert "FAIL  webhook-signature" in out


def test_an_old_capture_is_stale_unless_time_is_ignored(tmp_path: Path) -> None:
    path = _save(tmp_path, *signed_sample([KEY], "order_completed", now=time.time() - 3600))
    code, out = _verify(str(path), "--key", KEY)
    assert code == 1 and "3600 s old" in out
    assert _verify(str(path), "--key", KEY, "--ignore-time")[0] == 0


def test_an_altered_body_is_caught_by_the_body_signature(tmp_path: Path) -> None:
    headers, body = signed_sample([KEY], "order_completed")
    path = _save(tmp_path, headers, body.replace(b"XZHQ59WA", b"XZHQ59WB"))
    code, out = _verify(str(path), "--key", KEY)
    assert code == 1
    assert "ok    X-Selz-Signature: matches key #1" in out  # it does not cover data ...
    assert "the body was altered" in out  # ... but the body signature does


def test_an_http_message_file_is_read_too(tmp_path: Path) -> None:
    headers, body = signed_sample([KEY], "product_created")
    lines = ["POST /webhooks HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    path = tmp_path / "request.http"
    path.write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode() + body + b"\n")
    code, out = _verify(str(path), "--key", KEY)
    assert code == 0, out


def test_a_body_that_is_not_json_says_so(tmp_path: Path) -> None:
    headers, _ = signed_sample([KEY], "product_created")
    path = _save(tmp_path, headers, b"hello")
    code, out = _verify(str(path), "--key", KEY)
    assert code == 1 and "FAIL  body: body is not valid JSON" in out


def test_a_selz_only_request_is_refused_unless_checked_in_selz_only_mode(tmp_path: Path) -> None:
    headers, body = signed_sample([KEY], "order_completed")
    path = _save(tmp_path, {"X-Selz-Signature": headers["X-Selz-Signature"]}, body)
    code, out = _verify(str(path), "--key", KEY)
    assert code == 1 and "FAIL  webhook-signature: absent" in out and "--selz-only" in out
    code, out = _verify(str(path), "--key", KEY, "--selz-only")
    assert code == 0, out
    assert "warn  webhook-signature: absent" in out


@pytest.mark.parametrize("strict", [False, True])
def test_a_selz_only_request_passes_only_when_not_strict(strict: bool) -> None:
    headers, body = signed_sample([KEY], "order_completed")
    selz_only = {"X-Selz-Signature": headers["X-Selz-Signature"]}
    report = diagnose(selz_only, body, [KEY], require_standard=strict)
    assert report.valid is not strict


def test_load_request_refuses_a_parsed_body() -> None:
    from hookline.exceptions import ValidationError

    with pytest.raises(ValidationError, match="exact body text"):
        load_request(b'{"headers": {}, "body": {"a": 1}}')
