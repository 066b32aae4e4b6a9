"""The same refusal names the node parameter in the node and the flag in command-line tools (issue 18)."""
from pathlib import Path

import pytest

from talk2dino_ros.errors import CheckpointError, RandomWeightsRefused, Talk2DinoError


def test_each_front_end_phrases_the_switch(tiny_weights):
    from talk2dino_ros.model.backbone import build_dinov2_backbone

    with pytest.raises(RandomWeightsRefused) as err:
        build_dinov2_backbone(tiny_weights['dinov2'])
    exc = err.value
    assert isinstance(exc, CheckpointError) and 'non-standard width' in str(exc)
    assert str(tiny_weights['dinov2']) in str(exc) and str(tiny_weights['dinov2']) in exc.for_cli()
    assert 'allow_random_weights' in str(exc) and '--allow-random-weights' not in str(exc)
    assert '--allow-random-weights' in exc.for_cli() and 'allow_random_weights' not in exc.for_cli()


def test_plain_errors_read_the_same_everywhere():
    exc = Talk2DinoError('bad thing')
    assert exc.for_cli() == str(exc) == 'bad thing'


def test_cli_names_the_flag(tmp_path, tiny_weights, capsys):
    import numpy as np
    from PIL import Image

    from talk2dino_ros.cli import segment_image

    image = tmp_path / 'a.png'
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(image)
    rc = segment_image.main([str(image), '--vocab', 'a,b', '--out', str(tmp_path / 'o'), '--device', 'cpu',
                             '--weights-dir', str(Path(tiny_weights['dinov2']).parent)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count('\n') == 1
    assert 'pass --allow-random-weights' in err and ' allow_random_weights' not in err
