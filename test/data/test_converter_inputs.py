"""Converters refuse inputs that would make split lists name files outside the dataset."""
import json

import pytest

from talk2dino_ros.data.convert_context import convert_pascal_context
from talk2dino_ros.data.datasets import DatasetError
from test_converters import _detail_json


@pytest.mark.parametrize('file_name, reason', [
    ('evil\n2008_000001.jpg', 'control character'),   # a newline would add an id line to val.txt
    ('a/..', "'..' component"),                       # stem '..': the reader would leave the folder
])
def test_context_file_names_that_are_not_ids_are_refused(tmp_path, file_name, reason):
    devkit, _ = _detail_json(tmp_path)
    json_path = devkit / 'trainval_merged.json'
    data = json.loads(json_path.read_text())
    data['images'][2]['file_name'] = file_name
    json_path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=reason):
        convert_pascal_context(devkit)
    assert not (devkit / 'ImageSets').exists()  # no split list written


def test_context_json_with_invalid_utf8_is_a_dataset_error(tmp_path):
    devkit, _ = _detail_json(tmp_path)
    (devkit / 'trainval_merged.json').write_bytes(b'{"images": ["\xff"]}')
    with pytest.raises(DatasetError, match='cannot read annotation file'):
        convert_pascal_context(devkit)
