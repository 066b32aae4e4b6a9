"""Slow control work (text encoding, engine option changes) off the executor, in order, on one thread.

Callbacks submit a job and return at once, so images, parameters, services and diagnostics never wait
for a vocabulary of 1000 names to be encoded; frames keep flowing on the old vocabulary meanwhile (the
new legend is swapped in atomically when it is ready).

* Jobs run one at a time in submission order, so a later vocabulary always wins.
* A job submitted with ``coalesce=True`` (a topic message, a parameter change: nobody waits for its
  answer) is skipped when a newer coalescing job of the same ``kind`` is already queued behind it.
* ``done`` callbacks run on the executor thread, not on the worker: the worker triggers a guard
  condition and :meth:`ControlWorker.deliver` (its callback) runs them. That is where parameters may be
  set and service answers completed without racing the executor.
"""
from __future__ import annotations

import collections
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, List, Optional

#: the result of a job: (success, message)
Outcome = Any


@dataclass
class Job:
    """One unit of control work."""

    kind: str
    run: Callable[[], Outcome]
    done: Optional[Callable[[Outcome], None]] = None
    coalesce: bool = False
    outcome: Outcome = None
    skipped: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


class ControlWorker:
    """A single worker thread for control jobs with executor-thread completions.

    ``wake`` is called (from the worker) whenever completions are ready; the node passes a guard
    condition's ``trigger``, whose callback calls :meth:`deliver`. ``on_error`` receives a one-line
    message and a traceback for a job that raised.
    """

    def __init__(self, wake: Callable[[], None], on_error: Callable[[str, str], None],
                 name: str = 't2d_control') -> None:
        self._wake = wake
        self._on_error = on_error
        self._cond = threading.Condition()
        self._queue: Deque[Job] = collections.deque()
        self._finished: List[Job] = []
        self._stopped = False
        self._busy: Optional[Job] = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ any thread
    def submit(self, kind: str, run: Callable[[], Outcome], done: Optional[Callable[[Outcome], None]] = None,
               coalesce: bool = False) -> Job:
        """Queue ``run``; ``done(outcome)`` runs on the executor thread when it finished (or was skipped)."""
        job = Job(kind, run, done, coalesce)
        with self._cond:
            if self._stopped:
                job.skipped, job.outcome = True, (False, 'the node is shutting down')
                job.finished.set()
                return job
            self._queue.append(job)
            self._cond.notify_all()
        return job

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return len(self._queue) + (self._busy is not None)

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Block until every queued job finished (tests, shutdown); True unless timed out."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and self._busy is None, timeout)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop taking jobs; queued ones are skipped. Waits up to ``timeout`` for the running one; True
        when the thread ended."""
        with self._cond:
            self._stopped = True
            skipped = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in skipped:
            job.skipped, job.outcome = True, (False, 'the node is shutting down')
            job.finished.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ executor thread
    def deliver(self) -> int:
        """Run the ``done`` callbacks of finished jobs (call on the executor thread); returns how many."""
        with self._cond:
            finished, self._finished = self._finished, []
        for job in finished:
            if job.done is not None:
                try:
                    job.done(job.outcome)
                except Exception as exc:  # a completion must not take the executor down
                    self._on_error(f'{job.kind} completion failed: {type(exc).__name__}: {exc}',
                                   traceback.format_exc())
        return len(finished)

    # ------------------------------------------------------------------ worker thread
    def _next(self) -> Optional[Job]:
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._stopped)
            if self._stopped:
                return None
            job = self._queue.popleft()
            if job.coalesce and any(j.coalesce and j.kind == job.kind for j in self._queue):
                job.skipped, job.outcome = True, (True, 'superseded by a newer change')
            self._busy = job
            return job

    def _loop(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            if not job.skipped:
                try:
                    job.outcome = job.run()
                except Exception as exc:  # keep the worker alive; the job reports failure
                    job.outcome = (False, f'{type(exc).__name__}: {exc}')
                    self._on_error(f'{job.kind} failed: {type(exc).__name__}: {exc}', traceback.format_exc())
            with self._cond:
                self._busy = None
                self._finished.append(job)
                job.finished.set()
                self._cond.notify_all()
            try:
                self._wake()
            except Exception:  # the guard condition is gone: the node is being destroyed
                pass


class ControlJobs:
    """A node's control thread: started and stopped with the node, completions run on its executor.

    The guard condition has its own callback group: an awaiting service callback holds its group, and
    the completion it waits for must still be delivered.
    """

    def __init__(self, node: Any) -> None:
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        self._logger = node.get_logger()
        self._worker: Optional[ControlWorker] = None
        self._guard = node.create_guard_condition(self._deliver, MutuallyExclusiveCallbackGroup())

    def start(self) -> None:
        """Start the thread (a no-op while it runs)."""
        if self._worker is None:
            self._worker = ControlWorker(self._guard.trigger, self._log_error)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread (queued jobs are answered as skipped); True when it ended."""
        worker, self._worker = self._worker, None
        return worker.stop(timeout) if worker is not None else True

    def submit(self, kind: str, run: Callable[[], Outcome], done: Callable[[Outcome], None],
               coalesce: bool = False) -> None:
        """Run ``run`` on the thread and ``done(outcome)`` on the executor; without a thread (not started
        yet, shutting down) both run here and now."""
        worker = self._worker
        if worker is None:
            done(run())
            return
        worker.submit(kind, run, done, coalesce=coalesce)

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        worker = self._worker
        return worker.pending if worker is not None else 0

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Block until every queued job finished (tests); True unless timed out."""
        worker = self._worker
        return worker.wait_idle(timeout) if worker is not None else True

    def _deliver(self) -> None:
        worker = self._worker
        if worker is not None:
            worker.deliver()

    def _log_error(self, message: str, trace: str) -> None:
        self._logger.error(f'{message}\n{trace}')
