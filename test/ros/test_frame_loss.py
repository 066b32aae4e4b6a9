"""Frames lost before the node, estimated from header-stamp gaps, and the words that name the cause."""
from talk2dino_ros.ros.frame_loss import LossEstimator, loss_hint


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def feed(stamps, window_s=5.0):
    clock = Clock()
    est = LossEstimator(window_s, clock=clock)
    for stamp in stamps:
        est.add(stamp)
        clock.now += 0.01
    return est, clock


def test_every_other_frame_lost_is_half():
    est, _ = feed([1.0 + 0.2 * i for i in range(0, 40, 2)])   # a 5 Hz camera, only even frames arrive...
    assert est.estimate() == (20, 0)                         # ...look like a steady 2.5 Hz camera
    stamps = [1.0 + 0.1 * i for i in range(40) if i % 2 == 0 or i % 3 == 0]   # 10 Hz, a third lost
    est, _ = feed(stamps)
    received, lost = est.estimate()
    assert received == len(stamps) and lost == 40 - len(stamps)
    assert 0.3 < est.lost_fraction() < 0.36


def test_steady_jittery_stamps_pauses_and_bad_stamps_are_not_losses():
    jitter = [1.0 + 0.1 * i + (0.012 if i % 2 else -0.009) for i in range(30)]
    assert feed(jitter)[0].estimate() == (30, 0)
    paused = [1.0 + 0.1 * i for i in range(15)] + [60.0 + 0.1 * i for i in range(15)]
    assert feed(paused)[0].estimate() == (30, 0)
    assert feed([0.0] * 30)[0].estimate() == (30, 0)          # a driver that never stamps
    assert feed([1.0, 1.1, 1.2])[0].estimate() == (3, 0)      # too few to tell


def test_the_window_forgets_old_frames():
    est, clock = feed([1.0 + 0.2 * i for i in range(20) if i % 2 == 0 or i < 4])
    clock.now += 10.0
    assert est.estimate() == (0, 0) and est.lost_fraction() == 0.0


def test_the_hint_names_the_qos_and_depth_causes():
    assert loss_hint(0.05, 'best_effort', 5) is None
    hint = loss_hint(0.5, 'best_effort', 5)
    assert hint.startswith('about 50% of the camera frames never arrive') and 'image_reliability: reliable' in hint
    assert 'raise it' in loss_hint(0.5, 'reliable', 1)
    assert 'network' in loss_hint(0.5, 'reliable', 5)
