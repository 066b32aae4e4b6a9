"""The segmentation node and everything it needs from rclpy: its collaborators (see
``docs/architecture.md``), parameters, QoS, image conversion.

The modules ``image_conversion``, ``vocabulary`` and ``cameras`` only need the message Python classes (or
nothing ROS at all), so tools such as the bag replayer can reuse them without a node. Nothing here imports
the command-line tools (``talk2dino_ros.cli``); the rclpy tools that start or watch a node live there.
"""
