"""Errors the model raises for bad user input (front ends turn them into one readable line).

A message that tells the user which switch to use is phrased by the front end that shows it: ``str()``
names the ROS node's parameter, :meth:`Talk2DinoError.for_cli` the command-line flag.
"""


class Talk2DinoError(Exception):
    """Base class of every user-facing error of talk2dino_ros (bad file, bad input, bad option)."""

    def for_cli(self) -> str:
        """The message as a command-line tool prints it (same as ``str()`` unless a switch is named)."""
        return str(self)


class CheckpointError(Talk2DinoError):
    """A weight file is missing, unreadable, corrupt or of the wrong architecture/width."""


class InputError(Talk2DinoError, ValueError):
    """An image or vocabulary that cannot be segmented (wrong dtype/channels/size, empty vocabulary)."""


class RandomWeightsRefused(CheckpointError):
    """A checkpoint of a non-published (random test) width, given without the switch that accepts it.

    ``reason`` says which file and why; the message then names the switch: the node parameter
    ``allow_random_weights`` in ``str()``, the flag ``--allow-random-weights`` in :meth:`for_cli`.
    """

    PARAMETER = 'allow_random_weights'
    FLAG = '--allow-random-weights'

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(self._phrase(f'set the parameter {self.PARAMETER} to true'))

    def _phrase(self, how: str) -> str:
        return f'{self.reason}; {how} to use it (tests and smoke runs only)'

    def for_cli(self) -> str:
        return self._phrase(f'pass {self.FLAG}')
