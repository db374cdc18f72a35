"""What a fresh Python process loads: nothing heavy until it is used.

Each test starts an interpreter of its own (a subprocess), since what one test run has
imported already says nothing about what an application's import costs.
"""

from __future__ import annotations

import subprocess
import sys

import hookline
from hookline.client import AsyncClient, Client


def test_import_hookline_leaves_the_client_unloaded_until_used() -> None:
    code = (
        "import sys, hookline; heavy = ('typing', 'pydantic', 'pyreqwest', 'hookline.client');"
        "print([m for m in heavy if m in sys.modules]);"
        "hookline.Client; print('pyreqwest' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
    assert hookline.Client is Client and hookline.AsyncClient is AsyncClient


def test_nothing_of_opentelemetry_is_imported_where_tracing_is_off() -> None:
    """The sender's API, engine and CLI, and the receiver's workers, as a process without
    OTEL_* variables loads them."""
    code = """
import sys
from hookline.server import create_server
from hookline.cli.sender import _tracing
from hookline.receiver.tracing import configure_from_env, handler_tracer
from hookline.receiver.workers import Workers
from hookline.sender.engine import Engine
assert _tracing() is None and configure_from_env() is None and handler_tracer() is None
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
"""
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
