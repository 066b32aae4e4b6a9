"""What the node promises, in one place and free of ROS: its parameters and its outputs.

* :mod:`talk2dino_ros.contract.parameters`: every parameter (default, range, group, description);
* :mod:`talk2dino_ros.contract.outputs`: every output (topic, message type, encoding, QoS, switch, cadence,
  whether ``segment_bag`` writes it);
* :mod:`talk2dino_ros.contract.docs`: the README tables, ``--help`` lines and RViz displays derived from them.

Like :mod:`talk2dino_ros.catalog` it imports neither rclpy nor torch, so every front end (node, launch file, bag
tool, image tool, tests) reads the same facts.
"""
