"""The control thread of the node: order, coalescing, completions on the caller's (executor's) thread, stop."""
import threading
import time

from talk2dino_ros.ros.control_worker import ControlWorker


def make(errors=None):
    wakes = []
    errors = [] if errors is None else errors
    worker = ControlWorker(lambda: wakes.append(1), lambda msg, trace: errors.append(msg))
    return worker, wakes, errors


def test_jobs_run_in_order_off_the_calling_thread_and_complete_on_deliver():
    worker, wakes, _ = make()
    ran, done = [], []
    caller = threading.get_ident()
    for i in range(5):
        worker.submit('vocabulary', lambda i=i: ran.append((i, threading.get_ident())) or (True, str(i)),
                      done=lambda outcome: done.append((outcome, threading.get_ident())))
    assert worker.wait_idle(5.0)
    assert [i for i, _ in ran] == [0, 1, 2, 3, 4] and all(t != caller for _, t in ran)
    assert done == [] and wakes  # completions wait for deliver() on the executor thread
    assert worker.deliver() == 5
    assert [o for o, _ in done] == [(True, str(i)) for i in range(5)] and all(t == caller for _, t in done)
    worker.stop()


def test_submit_returns_at_once_while_a_long_job_runs():
    worker, _, _ = make()
    gate = threading.Event()
    worker.submit('vocabulary', lambda: gate.wait(5.0) and (True, ''))
    started = time.perf_counter()
    worker.submit('engine', lambda: (True, ''))
    assert time.perf_counter() - started < 0.05 and worker.pending == 2
    gate.set()
    assert worker.wait_idle(5.0)
    worker.stop()


def test_coalescing_jobs_of_a_kind_skip_all_but_the_newest():
    worker, _, _ = make()
    gate = threading.Event()
    ran = []
    worker.submit('vocabulary', lambda: gate.wait(5.0) and ran.append('first') or (True, ''))
    outcomes = []
    for name in ('a', 'b', 'c'):
        worker.submit('vocabulary', lambda n=name: ran.append(n) or (True, n), coalesce=True,
                      done=outcomes.append)
    worker.submit('vocabulary', lambda: ran.append('service') or (True, 'service'), done=outcomes.append)
    gate.set()
    assert worker.wait_idle(5.0)
    worker.deliver()
    assert ran == ['first', 'c', 'service']  # a and b were superseded; a non-coalescing job always runs
    assert outcomes == [(True, 'superseded by a newer change')] * 2 + [(True, 'c'), (True, 'service')]
    worker.stop()


def test_a_failing_job_reports_and_the_worker_lives_on():
    worker, _, errors = make()
    outcomes = []
    worker.submit('engine', lambda: 1 / 0, done=outcomes.append)
    worker.submit('engine', lambda: (True, 'after'), done=outcomes.append)
    assert worker.wait_idle(5.0)
    worker.deliver()
    assert outcomes[0][0] is False and 'ZeroDivisionError' in outcomes[0][1] and outcomes[1] == (True, 'after')
    assert errors and 'engine failed' in errors[0]
    worker.stop()


def test_stop_skips_queued_jobs_and_later_submissions():
    worker, _, _ = make()
    gate = threading.Event()
    worker.submit('vocabulary', lambda: gate.wait(5.0) and (True, ''))
    queued = worker.submit('vocabulary', lambda: (True, 'never'))
    threading.Timer(0.2, gate.set).start()
    assert worker.stop(timeout=5.0)
    assert queued.skipped and queued.outcome == (False, 'the node is shutting down')
    late = worker.submit('vocabulary', lambda: (True, 'never'))
    assert late.skipped and late.finished.is_set()
