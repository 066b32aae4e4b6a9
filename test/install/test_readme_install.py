"""The README's "Installing on a ROS 2 machine" block: the recipe a ROS 2 user on Ubuntu 24.04 follows.

The rosdep lines are run by test_rosdep_rules.py and the colcon line by test_colcon_install.py; this file
checks the parts that cannot run here (apt, venv on the system Python) for what they must say.
"""
import re
import shlex

from helpers.install import ROOT, readme_commands, readme_install_block


def index_of(lines, pattern):
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert hits, f'no line matching {pattern!r} in the install block:\n' + '\n'.join(lines)
    return hits[0]


def test_the_block_is_the_rosdep_colcon_venv_recipe():
    lines = readme_install_block()
    sourced = index_of(lines, r'^source /opt/ros/\$ROS_DISTRO/setup\.bash$')
    clone = index_of(lines, r'git clone .* src/talk2dino_ros$')
    rosdep = index_of(lines, r'^rosdep install ')
    venv = index_of(lines, r'^python3 -m venv --system-site-packages (\S+)$')
    venv_dir = shlex.split(lines[venv])[-1]
    ignore = index_of(lines, rf'^touch {re.escape(venv_dir)}/COLCON_IGNORE$')
    activate = index_of(lines, rf'^source {re.escape(venv_dir)}/bin/activate$')
    pip = index_of(lines, r'^pip install ')
    build = index_of(lines, r'^colcon build')
    setup = index_of(lines, r'^source install/setup\.bash$')
    launch = index_of(lines, r'^ros2 launch talk2dino_ros segment\.launch\.py')
    assert sourced < clone < rosdep < venv < ignore < activate < pip < build < setup < launch
    # PEP 668: every pip install runs inside the venv, never into the system Python
    for i, line in enumerate(lines):
        if re.search(r'\bpip3? install\b', line):
            assert i > activate and 'sudo' not in line and '--break-system-packages' not in line, line
            assert not line.startswith('python3 -m pip'), line
    assert not any('talk2dino_ros_msgs' in line or '--base-paths' in line for line in lines)


def test_pip_line_pins_torch_and_names_existing_requirements():
    pip = [words for words in readme_commands('pip install')]
    assert len(pip) == 1, pip
    words = pip[0]
    assert 'torch==2.13.0' in words
    files = [words[i + 1] for i, w in enumerate(words) if w == '-r']
    assert files == ['src/talk2dino_ros/requirements-ml.txt']
    reqs = (ROOT / 'requirements-ml.txt').read_text(encoding='utf-8')
    names = {re.split(r'[<>=\[ ]', line.strip())[0].lower() for line in reqs.splitlines()
             if line.strip() and not line.startswith('#')}
    assert {'torchvision', 'timm', 'open_clip_torch', 'rosbags'} <= names
    # on a ROS machine numpy/OpenCV come from apt (rosdep): a pip numpy 2 would break the apt-built messages
    assert not names & {'numpy', 'opencv-python', 'opencv-python-headless', 'torch'}


def test_jetson_note_and_pins_agree():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    section = text[text.index('## Installing on a ROS 2 machine'):]
    section = section[:section.index('\n## ')]
    assert 'Jetson' in section and 'NVIDIA' in section and 'JetPack' in section
    pins = dict(re.findall(r'^([A-Za-z0-9_]+)==(\S+)$', (ROOT / 'requirements-ml.txt').read_text(), re.M))
    for name, version in re.findall(r'\b(timm|open_clip_torch)==(\S+?)[`\s]', section):
        assert pins[name] == version, (name, version, pins)
    assert 'Jazzy' in section and 'Kilted' in section and '24.04' in section
