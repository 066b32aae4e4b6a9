"""The segmentation model: pure PyTorch + numpy, never imports rclpy."""
from talk2dino_ros._compat import ensure_torchvision_importable

ensure_torchvision_importable()
