"""One-line notes a CLI prints last, so that they are the last thing a user reads."""
from __future__ import annotations

import argparse
import sys
from typing import TextIO

RANDOM_WEIGHTS_NOTE = ('note: these results come from RANDOM weights (--allow-random-weights); they mean '
                       'nothing; fetch the real ones with fetch_weights')
RANDOM_FEATURES_NOTE = ('note: extracted with --allow-random-weights: features of RANDOM test weights train a '
                        'meaningless projection; fetch the real weights with fetch_weights')


def remind_random_weights(args: argparse.Namespace, stream: TextIO = None) -> bool:
    """Print :data:`RANDOM_WEIGHTS_NOTE` when the run accepted random test weights; True when printed."""
    if not getattr(args, 'allow_random_weights', False):
        return False
    print(RANDOM_WEIGHTS_NOTE, file=stream or sys.stderr, flush=True)
    return True
