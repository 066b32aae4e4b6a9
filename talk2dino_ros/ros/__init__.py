"""Everything that touches rclpy: the segmentation node, its parameters, QoS, image conversion, overlay.

The modules ``image_conversion``, ``vocabulary``, ``colors`` and ``overlay`` only need the message
Python classes (or nothing ROS at all), so tools such as the bag replayer can reuse them without a node.
"""
