"""``striate`` commands of this task (work in progress this session)."""

from __future__ import annotations

from typing import Any


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add this module's subcommands (none yet)."""
