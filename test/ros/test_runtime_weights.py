"""A runtime weights change loads off the executor: diagnostics and the parameter services keep answering
while it runs, and a failed load keeps the previous model (fake and real engine, real rclpy)."""
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile

from helpers.ros import NODE, wait_for
from helpers.segmenters import FakeFactory
from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.ros.image_conversion import numpy_to_image
from helpers import hostile_weights as hw

DIAG_PERIOD = 0.2


class Responsiveness:
    """Parameter reads in a loop and /diagnostics arrivals, from the probe, while something else runs."""

    def __init__(self, node, probe):
        self.node, self.probe = node, probe
        self.diagnostics = []
        probe.create_subscription(DiagnosticArray, '/diagnostics',
                                  lambda m: self.diagnostics.append(time.monotonic()), QoSProfile(depth=50))
        self.params = AsyncParameterClient(probe, NODE)
        assert self.params.wait_for_services(timeout_sec=5.0)
        self.read()  # the service connection is warm

    def read(self):
        started = time.monotonic()
        future = self.params.get_parameters(['mode'])
        wait_for(lambda: future.done(), timeout=10.0, what='a parameter answer')
        return time.monotonic() - started

    def during(self, busy):
        """Parameter answer times and the longest /diagnostics gap while ``busy()`` is true."""
        first = len(self.diagnostics)
        answers = []
        while busy():
            answers.append(self.read())
            time.sleep(0.05)
        arrivals = self.diagnostics[first:]
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        return answers, max(gaps, default=0.0), len(arrivals)


def _set(params, name, value):
    future = params.set_parameters([Parameter(name, value=value)])
    return wait_for(lambda: future.done() and future.result(), what='param set').results[0]


class GilHeavyFactory(FakeFactory):
    """Loads after the first run pure-Python work for ``seconds`` (the GIL is busy) and then fail."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.loading = False

    def __call__(self, settings):
        if not self.loads:
            return super().__call__(settings)
        self.loading = True
        try:
            end, n = time.perf_counter() + self.seconds, 0
            while time.perf_counter() < end:
                n += sum(i * i for i in range(200))
            raise CheckpointError(f'{settings.weights()["clip"]}: not a checkpoint (checked {n})')
        finally:
            self.loading = False


def test_a_slow_failing_runtime_load_keeps_the_node_answering_and_the_previous_model(make_node, tmp_path):
    other = tmp_path / 'other_clip.pt'
    other.write_bytes(b'x')
    factory = GilHeavyFactory(seconds=2.5)
    node, probe, _ = make_node(params={'allow_runtime_weight_changes': True, 'diagnostics_period': DIAG_PERIOD},
                               factory=factory, vocabulary=['a', 'b'])
    first = node.segmenter
    watch = Responsiveness(node, probe)
    assert _set(watch.params, 'clip_weights', str(other)).successful
    wait_for(lambda: factory.loading, what='the load to start')
    answers, gap, count = watch.during(lambda: factory.loading)
    assert answers and max(answers) < 0.5, f'parameter answers took up to {max(answers):.2f} s during the load'
    assert count >= 3 and gap < 5 * DIAG_PERIOD, f'/diagnostics stopped for {gap:.2f} s during the load'
    wait_for(lambda: 'not a checkpoint' in node.load_error, what='the failed load')
    assert node.segmenter is first and node.legend_state.segmenter is first
    probe.send(numpy_to_image(np.full((4, 6, 3), 200, np.uint8), 'rgb8', probe.next_header()))


def test_a_hostile_clip_archive_at_runtime_is_refused_while_the_node_answers(make_node, tiny_weights, tmp_path):
    """The real loader: a few-kB archive whose code/ entry made the old reader's regular expressions run for
    minutes with the GIL held (diagnostics and GetParameters froze)."""
    from talk2dino_ros.ros.segmentation_node import default_segmenter_factory

    hostile = hw.torchscript(tmp_path / 'ViT-B-16.pt', hw.weight_pickle(4, [4], [1]), {'0': bytes(16)},
                             extra={'code/__torch__/slow.py': b'class Slow(Module):\n' + b' \n' * 100_000})
    weights_dir = str(next(iter(tiny_weights.values())).parent)
    node, probe, _ = make_node(params={'weights_dir': weights_dir, 'allow_random_weights': True, 'device': 'cpu',
                                       'resolution': 56, 'allow_runtime_weight_changes': True,
                                       'diagnostics_period': DIAG_PERIOD},
                               factory=default_segmenter_factory, vocabulary=['sky', 'road'])
    first = node.segmenter
    watch = Responsiveness(node, probe)
    assert _set(watch.params, 'clip_weights', str(hostile)).successful
    started = time.monotonic()
    answers, gap, count = watch.during(lambda: not node.load_error and time.monotonic() - started < 60.0)
    assert node.load_error, 'the hostile archive was not refused within 60 s'
    assert 'ViT-B-16.pt' in node.load_error and '\n' not in node.load_error
    assert max(answers, default=0.0) < 0.5 and gap < 5 * DIAG_PERIOD
    assert node.segmenter is first
    probe.send(numpy_to_image(np.full((4, 6, 3), 200, np.uint8), 'rgb8', probe.next_header()))
