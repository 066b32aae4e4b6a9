"""Errors the model raises for bad user input (front ends turn them into one readable line)."""


class Talk2DinoError(Exception):
    """Base class of every user-facing error of talk2dino_ros (bad file, bad input, bad option)."""


class CheckpointError(Talk2DinoError):
    """A weight file is missing, unreadable, corrupt or of the wrong architecture/width."""


class InputError(Talk2DinoError, ValueError):
    """An image or vocabulary that cannot be segmented (wrong dtype/channels/size, empty vocabulary)."""
