"""Hooks that slogate adds to pytest, for plugins and conftest.py files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest


def pytest_slogate_eval_scorers(config: pytest.Config) -> Mapping[str, Callable[..., Any]] | None:
    """Return custom eval scorers by name, for scenarios to use as ``{type: custom, function: NAME}``.

    Each scorer is called as ``function(output, item, **options)`` and returns a bool, a number
    from 0 to 1, or a ``harness.evals.Score``; it may be a coroutine function. Every
    implementation is called once, before the first scenario file is loaded, so only
    conftest.py files loaded by then (the root's and those on the command line) take part.
    """
