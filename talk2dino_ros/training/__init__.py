"""Offline training of the Talk2DINO projection ψ: feature extraction (``extract``) and fitting (``fit``).

``coco_captions`` reads the dataset, ``features`` defines the sharded on-disk feature format,
``extract`` fills it with the frozen DINOv2 / CLIP outputs, ``fit`` trains ψ on it. The CLI is
``talk2dino_ros.cli.train``. Never imports rclpy.
"""
