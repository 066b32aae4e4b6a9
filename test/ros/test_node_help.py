"""`ros2 run talk2dino_ros segment_node --ros-args --help` prints the usage like `segment_node --help`."""
from talk2dino_ros.ros.segment_node import _asks_for_help, main


def test_help_after_ros_args_prints_usage(capsys):
    assert _asks_for_help(['--ros-args', '--help'])
    assert _asks_for_help(['--ros-args', '-r', '__node:=x', '-h'])
    assert not _asks_for_help(['--ros-args', '-p', 'vocabulary:=[--help]'])
    assert main(['--ros-args', '--help']) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith('usage: segment_node') and 'max_input_pixels' in captured.out
    assert 'error' not in captured.err
