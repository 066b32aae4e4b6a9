"""talk2dino_ros: open-vocabulary semantic segmentation for ROS 2.

Layout: ``model`` (pure PyTorch/numpy, no ROS), ``ros`` (everything rclpy), ``data`` and ``training``
(offline tools), and thin command-line entry points at the package top level.
"""
__version__ = '0.1.0'

# The build (CMakeLists.txt) installs the generated interface modules (talk2dino_ros.msg, talk2dino_ros.srv
# and their type-support extensions) into the installed copy of this package; a source checkout that comes
# first on sys.path finds them there too.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
