"""Invoke entry point: `inv --list` shows the ray-tasks collection."""

from ray_tasks.collection import namespace

__all__ = ["namespace"]
