"""Alerts on a failed or partial run (placeholder until the notifier is wired)."""

from __future__ import annotations

from typing import Any


def alert_from_context(context: dict[str, Any]) -> None:
    """Nothing yet."""
