"""The segmentation node as a managed (lifecycle) node, for stacks brought up by a lifecycle manager.

Same topics, parameters and behaviour as :class:`~talk2dino_ros.ros.segmentation_node.SegmentationNode`,
made and released by the transitions:

* **configure** loads the model and encodes the vocabulary (blocking; a missing or broken weight file
  fails the transition with the reason logged), creates the publishers, the vocabulary inputs and the
  model loader that follows later parameter changes;
* **activate** subscribes to the camera(s) and starts the worker: frames are segmented and published;
* **deactivate** unsubscribes and stops the worker: nothing is computed or published per frame. It returns
  within 3 s even during a long frame: that frame ends in the background and its outputs are dropped, and
  the next activate starts one new worker (never two);
* **cleanup** (and shutdown / error) releases everything, the model included; on CUDA its memory is
  handed back to the driver (``torch.cuda.empty_cache``).

``/diagnostics`` is published in every state and says which one the node is in. There is no ``~/enable``
service: deactivate is the way to pause.
"""
from __future__ import annotations

import threading
import time
from typing import Any, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from talk2dino_ros.ros.engine_host import SegmenterFactory
from talk2dino_ros.ros.segmentation_node import SegmentationCore

UNCONFIGURED = 'unconfigured: the configure transition loads the model'
#: the longest a transition waits for the node's threads (launch's shutdown bound); a frame or load still
#: running then ends in the background and its result is dropped
TRANSITION_BOUND_S = 3.0
#: part of the bound kept for destroying subscriptions and publishers after the waits
_DESTROY_MARGIN_S = 0.3


class SegmentationLifecycleNode(SegmentationCore, LifecycleNode):
    """Open-vocabulary segmentation of a camera stream as an ``rclpy.lifecycle`` node."""

    def __init__(self, node_name: str = 'talk2dino', *, segmenter_factory: Optional[SegmenterFactory] = None,
                 **node_kwargs) -> None:
        LifecycleNode.__init__(self, node_name, **node_kwargs)
        self._init_core(segmenter_factory)
        self._host.release(UNCONFIGURED)  # nothing loaded yet: say why in /diagnostics
        self._enabled = False
        self._configured = False
        self._configure_failed = False
        self._image_inputs: List[Any] = []
        self._loader: Optional[threading.Thread] = None
        self._worker: Optional[threading.Thread] = None
        self._worker_stop = threading.Event()

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and the vocabulary; make the publishers and the vocabulary inputs."""
        self._settings = self._read_settings()
        self._stop.clear()
        self._mailbox.reopen()
        if not self._model_loader.load(self._settings):
            self._host.release(f'configure failed: {self._host.load_error}')
            self._configure_failed = True  # an ERROR in /diagnostics until a configure succeeds or cleanup
            return TransitionCallbackReturn.FAILURE
        self._configure_failed = False
        self._control.start()
        self._create_outputs()
        self._vocabulary.create_inputs()
        self._model_loader.reload.clear()
        self._loader = threading.Thread(target=self._model_loader.run, args=(self._stop,), name='t2d_loader',
                                        daemon=True)
        self._loader.start()
        self._configured = True
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the camera(s) and start segmenting."""
        self._mailbox.take_all()  # nothing from an earlier activation
        self._image_inputs = self._create_image_inputs()
        self._worker_stop = threading.Event()  # never the event of an earlier worker that may still run
        self._enabled = True
        self._worker = threading.Thread(target=self._frame_worker.run, args=(self._worker_stop,),
                                        name='t2d_worker', daemon=True)
        self._worker.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker: nothing is computed until the next activate."""
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model (GPU memory included), the publishers and the inputs."""
        self._release(UNCONFIGURED)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release('shut down')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release(UNCONFIGURED)
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ helpers
    @property
    def active(self) -> bool:
        """True between activate and deactivate."""
        return self._enabled

    def _deactivate(self, deadline: Optional[float] = None) -> None:
        """Stop the worker and unsubscribe, within :data:`TRANSITION_BOUND_S` whatever frame is running.

        Each activation's worker has its own stop event, set under the worker's publish gate: from then on
        that worker publishes nothing. A frame still running after the wait ends in the background (its
        outputs are dropped) and its worker leaves; the next activate starts a new one, never the old one.
        """
        deadline = deadline if deadline is not None else time.monotonic() + TRANSITION_BOUND_S
        self._enabled = False
        worker, self._worker = self._worker, None
        with self._frame_worker.gate:
            self._worker_stop.set()
        self._mailbox.poke()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=max(0.0, deadline - time.monotonic() - _DESTROY_MARGIN_S))
            if worker.is_alive():
                worker.name = 't2d_worker_retiring'
                self.get_logger().warning('deactivate: a frame is still running; it ends in the background '
                                          'and its outputs are dropped')
        for sub in self._image_inputs:
            self.destroy_subscription(sub)
        self._image_inputs = []
        if self._spatial is not None:
            self._spatial.stop_depth()
        self._mailbox.take_all()

    def _release(self, why: str) -> None:
        deadline = time.monotonic() + TRANSITION_BOUND_S
        self._deactivate(deadline)
        self._stop.set()
        self._model_loader.reload.set()
        loader, self._loader = self._loader, None
        if loader is not None and loader is not threading.current_thread():
            # a load still running is dropped when it ends (EngineHost.release bumps its generation)
            loader.join(timeout=max(0.0, deadline - time.monotonic() - _DESTROY_MARGIN_S))
        self._control.stop(max(0.0, deadline - time.monotonic() - _DESTROY_MARGIN_S))
        self._vocabulary.destroy_inputs()
        for out in self._outputs.values():
            out.destroy()
        self._outputs = {}
        if self._spatial is not None:
            self._spatial.destroy()
            self._spatial = None
        self._host.release(why)
        self._configured = False

    def weight_paths_settable(self) -> bool:
        """Also while unconfigured: a failed configure is repaired with ``ros2 param set`` and a new configure."""
        return super().weight_paths_settable() or not getattr(self, '_configured', False)

    def _diagnostic_level(self, input_message: str = '') -> Tuple[int, str]:
        if not self._configured:
            level = DiagnosticStatus.ERROR if self._configure_failed else DiagnosticStatus.OK
            return level, self._host.model_error or UNCONFIGURED
        if not self._enabled:
            return DiagnosticStatus.OK, 'inactive: the activate transition starts segmenting'
        return super()._diagnostic_level(input_message)

    def destroy_node(self) -> None:
        self._release('shut down')
        self._stop_threads()
        super().destroy_node()
