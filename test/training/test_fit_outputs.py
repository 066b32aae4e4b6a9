"""ψ training's run folder: history.jsonl always matches the checkpoint, also across a resume; no temporaries."""
import json

import numpy as np
import pytest

from talk2dino_ros.training.fit import CHECKPOINT_NAME, HISTORY_NAME, fit
from test_fit import D, E, _cfg, write_planted


def test_history_file_matches_the_checkpoint_after_a_resume(tmp_path):
    mapping = np.random.default_rng(0).normal(size=(E, D)) / np.sqrt(D)
    write_planted(tmp_path / 'train', 40, 2, seed=1, mapping=mapping)
    cfg = dict(val_features='', batch_size=32)
    fit(_cfg(tmp_path, 'run', epochs=1, **cfg), log=lambda s: None)
    run_dir = tmp_path / 'run' / 'run'
    # a crash after the checkpoint but with a stale history line must not leave a duplicate epoch behind
    (run_dir / HISTORY_NAME).write_text((run_dir / HISTORY_NAME).read_text() * 2)
    result = fit(_cfg(tmp_path, 'run', epochs=3, resume=True, **cfg), log=lambda s: None)
    lines = [json.loads(line) for line in (run_dir / HISTORY_NAME).read_text(encoding='utf-8').splitlines()]
    assert [r['epoch'] for r in lines] == [1, 2, 3]
    assert lines == json.loads(json.dumps(result.history))
    # the loss curve is drawn after every epoch (no validation here, so no recall picture)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([CHECKPOINT_NAME, HISTORY_NAME, 'loss.png'])


def test_feature_manifest_with_invalid_utf8_is_a_feature_error(tmp_path):
    from talk2dino_ros.training import features as fmt

    (tmp_path / fmt.MANIFEST).write_bytes(b'{"format": "\xff\xfe"}')
    with pytest.raises(fmt.FeatureError, match='unreadable'):
        fmt.read_manifest(tmp_path)
