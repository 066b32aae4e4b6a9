"""Compatibility alias: the error classes live in :mod:`talk2dino_ros.errors` (importable without torch)."""
from talk2dino_ros.errors import CheckpointError, InputError, Talk2DinoError  # noqa: F401
