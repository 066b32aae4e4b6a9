"""talk2dino_ros: open-vocabulary semantic segmentation for ROS 2.

Layout: ``model`` (pure PyTorch/numpy, no ROS), ``ros`` (everything rclpy), ``data`` and ``training``
(offline tools), and thin command-line entry points at the package top level.
"""
__version__ = '0.1.0'
