"""The command-line tools: one module per console script of setup.py (the rclpy ones included)."""
