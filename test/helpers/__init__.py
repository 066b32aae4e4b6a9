"""Helpers shared by the tests (the root conftest puts ``test/`` on ``sys.path``).

* :mod:`helpers.segmenters`: stand-ins for the engine (a striped fake whose labels a test can predict, an oracle);
* :mod:`helpers.ros`: the node's name, a probe node, ``wait_for``;
* :mod:`helpers.bags`: read back a bag;
* :mod:`helpers.datasets`: tiny synthetic datasets in the benchmarks' on-disk layouts;
* :mod:`helpers.install`: the README install block, an emulated ROS 2 shell, offline rosdep;
* :mod:`helpers.hostile_weights`: crafted weight files (bombs, module DAGs, zero-stride views) and
  ``load_probe.py``, the child process that loads them and measures time and peak memory.
"""
