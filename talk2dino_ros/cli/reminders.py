"""One-line notes a CLI prints last, so that they are the last thing a user reads."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, TextIO

from talk2dino_ros.evaluation.report import RANDOM_WEIGHTS_HEADER  # noqa: F401 (re-export: tables' first line)

RANDOM_WEIGHTS_NOTE = ('note: these results come from RANDOM weights; they mean '
                       'nothing; fetch the real ones with fetch_weights')
RANDOM_FEATURES_NOTE = ('note: extracted with --allow-random-weights: features of RANDOM test weights train a '
                        'meaningless projection; fetch the real weights with fetch_weights')
RANDOM_FIT_NOTE = ('note: the features were extracted from RANDOM test weights: this projection means nothing; '
                   're-extract with the real weights (fetch_weights) before training')


def is_random(args: argparse.Namespace, segmenter: Any = None) -> bool:
    """True when the run's results come from random weights: the loaded model says so (a test width or
    the random-weights path), or, before anything loaded, the flag that accepts them was given."""
    if segmenter is not None and getattr(segmenter, 'random_weights', None) is not None:
        return bool(segmenter.random_weights) or bool(getattr(args, 'allow_random_weights', False))
    return bool(getattr(args, 'allow_random_weights', False))


def remind_random_weights(args: argparse.Namespace, stream: TextIO = None, *, random: Optional[bool] = None) -> bool:
    """Print :data:`RANDOM_WEIGHTS_NOTE` when the results came from random weights (``random``, else the
    flag); True when printed."""
    if not (is_random(args) if random is None else random):
        return False
    print(RANDOM_WEIGHTS_NOTE, file=stream or sys.stderr, flush=True)
    return True
