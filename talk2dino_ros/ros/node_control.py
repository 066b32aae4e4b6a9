"""The segmentation node's control inputs: vocabulary topic and service, parameter-driven changes, no-input help.

Mixed into :class:`talk2dino_ros.ros.segmentation_node.SegmentationCore`. What it guarantees:

* **Callbacks never wait.** Encoding a vocabulary and changing engine options run on a
  :class:`~talk2dino_ros.ros.control_worker.ControlWorker` thread; frames keep flowing on the old
  vocabulary meanwhile. ``~/set_vocabulary`` is an async service callback: it answers when the new
  vocabulary is installed (or failed) while the executor goes on serving images, parameters and timers.
* **The vocabulary topic is relative** (``vocab``, so it follows the node namespace; the launch file
  remaps it to ``/t2d/vocab``) and has two subscriptions, transient-local and volatile, so both a
  latched publisher and a plain ``ros2 topic pub`` are heard; a sample that both deliver is applied once.
* **The newest vocabulary wins**: :mod:`talk2dino_ros.ros.vocabulary_order` puts the two subscriptions'
  samples back in their publishers' order; the service and the parameter follow in arrival order; the
  control jobs run in that order (a queued topic or parameter change is skipped when a newer one follows).
* **No-input help**: an :class:`~talk2dino_ros.ros.input_watch.InputWatch` per camera topic and one for
  the vocabulary topic (incompatible publishers only).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from talk2dino_ros.ros.control_worker import ControlWorker
from talk2dino_ros.ros.input_watch import InputWatch, type_name
from talk2dino_ros.ros.qos import latched_qos, vocabulary_volatile_qos
from talk2dino_ros.ros.vocabulary import MAX_NAMES, ParsedVocabulary, parse_vocabulary
from talk2dino_ros.ros.vocabulary_order import HOLD_S, Held, VocabularyOrder, sample_id

#: the node's vocabulary topic, relative: it follows the node namespace (the launch file remaps it)
VOCAB_TOPIC = 'vocab'
#: requests ~/set_vocabulary keeps while busy (the ROS default of 10 loses the rest of a burst)
SERVICE_DEPTH = 100


class ControlMixin:
    """Vocabulary inputs, control jobs off the executor, and input watches for an rclpy segmentation node.

    The host class provides ``_host`` (EngineHost), ``_settings``, ``stats``, ``apply_vocabulary``,
    ``_legend_installed``, ``_sync_vocabulary_parameter``, ``_log_parse`` and the rclpy Node API.
    """

    # ------------------------------------------------------------------ setup
    def _init_control(self) -> None:
        """State of the control part; the guard condition delivers completions on the executor thread."""
        self._control: Optional[ControlWorker] = None
        # Own callback groups: an awaiting service call holds its group, and completions must still run
        self._control_group = MutuallyExclusiveCallbackGroup()
        self._vocab_service_group = ReentrantCallbackGroup()
        self._control_guard = self.create_guard_condition(self._deliver_control, self._control_group)
        self._order = VocabularyOrder()
        self._held: Optional[Held] = None        # a transient-local sample waiting for its volatile copy
        self._hold_timer: Any = None
        self._input_watches: Dict[str, InputWatch] = {}
        self._vocab_watch: Optional[InputWatch] = None

    def _start_control(self) -> None:
        if self._control is None:
            self._control = ControlWorker(self._control_guard.trigger, self._log_control_error)

    def _stop_control(self, timeout: float = 5.0) -> bool:
        """Stop the control thread (queued jobs are answered as skipped); True when it ended."""
        control, self._control = self._control, None
        return control.stop(timeout) if control is not None else True

    def _log_control_error(self, message: str, trace: str) -> None:
        self.get_logger().error(f'{message}\n{trace}')

    def _deliver_control(self) -> None:
        control = self._control
        if control is not None:
            control.deliver()

    @property
    def vocabulary_topic(self) -> str:
        """The resolved vocabulary topic (``/t2d/vocab`` under the launch file)."""
        return self.resolve_topic_name(VOCAB_TOPIC)

    def max_classes(self) -> int:
        return int(self._settings.max_classes or MAX_NAMES)

    def parse_names(self, source) -> ParsedVocabulary:
        """:func:`parse_vocabulary` with the node's ``max_classes``."""
        return parse_vocabulary(source, max_names=self.max_classes())

    def _create_vocabulary_inputs(self) -> List[Any]:
        """Two vocabulary subscriptions (latched and volatile) and the vocabulary service."""
        from talk2dino_ros.srv import SetVocabulary

        latched, volatile = latched_qos(), vocabulary_volatile_qos()
        # a volatile publisher is expected to miss the latched subscription: the volatile one takes it
        quiet = SubscriptionEventCallbacks(incompatible_qos=self._on_latched_vocab_incompatible)
        self._hold_timer = self.create_timer(HOLD_S, self._release_held_vocab)
        self._hold_timer.cancel()  # armed by a transient-local sample
        entities = [
            self.create_subscription(String, VOCAB_TOPIC, self._on_latched_vocab, latched, event_callbacks=quiet),
            self.create_subscription(String, VOCAB_TOPIC, self._on_volatile_vocab, volatile),
            self.create_service(SetVocabulary, '~/set_vocabulary', self._on_set_vocabulary,
                                qos_profile=QoSProfile(depth=SERVICE_DEPTH, reliability=ReliabilityPolicy.RELIABLE),
                                callback_group=self._vocab_service_group),
            self._hold_timer,
        ]
        self._vocab_watch = InputWatch(self, self.vocabulary_topic, (latched, volatile), 'a vocabulary',
                                       only_incompatible=True)
        return entities

    def _watch_input(self, camera: str, subscription: Any, qos: Any, flag: str) -> None:
        """Explain a silent camera topic after a few seconds (``flag``: the name to remap, e.g. ``image``)."""
        self._input_watches[camera] = InputWatch(self, subscription.topic_name, (qos,), 'no images',
                                                 flag=flag, wanted_type=type_name(subscription.msg_type))

    def _input_seen(self, camera: str) -> None:
        watch = self._input_watches.get(camera)
        if watch is not None:
            watch.event()

    def _on_latched_vocab_incompatible(self, event: Any) -> None:
        self.get_logger().debug(f'{self.vocabulary_topic}: a volatile publisher is served by the volatile '
                                f'subscription ({event.last_policy_kind})')

    # ------------------------------------------------------------------ vocabulary inputs
    def _on_volatile_vocab(self, msg: String, info: Optional[dict] = None) -> None:
        if self._order.from_volatile(sample_id(msg.data, info, time.monotonic())):
            self._take_vocab_message(msg.data)

    def _on_latched_vocab(self, msg: String, info: Optional[dict] = None) -> None:
        held = self._order.from_latched(sample_id(msg.data, info, time.monotonic()), msg.data)
        if held is not None:  # wait for its volatile copy, which comes in its publisher's order
            self._held = held
            self._hold_timer.reset()

    def _release_held_vocab(self) -> None:
        self._hold_timer.cancel()
        held, self._held = self._held, None
        if held is not None and self._order.release(held):
            self._take_vocab_message(held.payload)

    def _take_vocab_message(self, text: str) -> None:
        """A topic sample that is newer than everything taken before: parse it and queue the change."""
        if self._vocab_watch is not None:
            self._vocab_watch.event()
        topic = self.vocabulary_topic
        parsed = self.parse_names(text)
        self._log_parse(topic, parsed)
        if parsed.accepted:
            def done(outcome: Tuple[bool, str]) -> None:
                if not outcome[0]:
                    self.get_logger().error(f'{topic}: {outcome[1]}')
            self.submit_vocabulary(parsed.accepted, sync_parameter=True, done=done, coalesce=True)

    async def _on_set_vocabulary(self, request, response):
        parsed = self.parse_names(list(request.names))
        self._log_parse('~/set_vocabulary', parsed)
        response.rejected = [r.name for r in parsed.rejected]
        if not parsed.accepted:
            response.success = False
            response.message = f'vocabulary unchanged: no usable class name ({parsed.summary()})'
            response.accepted = list(self._host.names)
            return response
        from rclpy.task import Future
        future = Future(executor=self.executor)
        self._order.local_change()
        self.submit_vocabulary(parsed.accepted, sync_parameter=True, done=future.set_result)
        ok, why = await future
        response.success = bool(ok)
        response.accepted = list(self._host.names)
        response.message = parsed.summary() + (f'; {why}' if why else '')
        return response

    # ------------------------------------------------------------------ control jobs
    def submit_vocabulary(self, names: Optional[Sequence[str]], sync_parameter: bool = True,
                          done: Optional[Callable[[Tuple[bool, str]], None]] = None,
                          coalesce: bool = False) -> None:
        """Apply a vocabulary (``None``: rebuild the legend) on the control thread; ``done((ok, why))`` runs
        on the executor thread afterwards.

        With ``sync_parameter`` the ``vocabulary`` parameter is set to the new names *before* the legend is
        swapped in (and set back if encoding fails), so whoever sees the new legend sees the parameter too;
        every path syncs, so the parameter always ends on the vocabulary of the last change applied.
        """
        names = tuple(names) if names is not None else None

        def run() -> Tuple[bool, str]:
            target = names
            if target is None and len(self._host.names) > self.max_classes():
                # max_classes was lowered: the rebuilt legend keeps the first names, the parameter follows
                target = self._host.names[:self.max_classes()]
                self.get_logger().warning(f'max_classes is {self.max_classes()}: keeping the first '
                                          f'{len(target)} of {len(self._host.names)} classes')
                self._sync_vocabulary_parameter(target)
                return self.apply_vocabulary(target, sync_parameter=False)
            # compared with the parameter, not the legend: a change queued before this one may have set it
            synced = (names is not None and sync_parameter
                      and tuple(self._settings.vocabulary_names or ()) != names)
            if synced:
                self._sync_vocabulary_parameter(names)
            outcome = self.apply_vocabulary(names, sync_parameter=False)
            if synced and not outcome[0]:
                self._sync_vocabulary_parameter(self._host.names)
            return outcome
        self._submit('vocabulary', run, done or (lambda outcome: None), coalesce)

    def submit_engine_settings(self) -> None:
        """Give the running model the current mode/resolution, on the control thread."""
        def run() -> Tuple[bool, str]:
            why = self._host.apply_engine_settings(self._settings)
            return (why is None, why or '')

        def finished(outcome: Tuple[bool, str]) -> None:
            if not outcome[0]:
                self.get_logger().error(outcome[1])
        self._submit('engine', run, finished, coalesce=True)

    def _submit(self, kind: str, run: Callable[[], Tuple[bool, str]],
                done: Callable[[Tuple[bool, str]], None], coalesce: bool) -> None:
        control = self._control
        if control is None:  # no control thread (not started yet / shutting down): do it here
            done(run())
            return
        control.submit(kind, run, done, coalesce=coalesce)

    # ------------------------------------------------------------------ diagnostics
    def _input_diagnostics(self) -> Tuple[str, Dict[str, str]]:
        """(a message explaining silent inputs or '', key/values) for the diagnostics status."""
        message, values = '', {}
        several = len(self._input_watches) > 1
        for camera, watch in self._input_watches.items():
            diagnosis = watch.check()
            if diagnosis is None:
                continue
            prefix = f'{camera}.' if several else ''
            values.update({prefix + k: v for k, v in diagnosis.values.items()})
            if not message:
                message = diagnosis.line(f'no images for {watch.timer.silent_for():.0f} s')
        if self._vocab_watch is not None:
            diagnosis = self._vocab_watch.check()
            if diagnosis is not None:
                values['vocabulary_topic'] = diagnosis.topic
                values['vocabulary_qos_incompatible'] = diagnosis.values['input_qos_incompatible']
        control = self._control
        values['control_jobs_pending'] = str(control.pending if control is not None else 0)
        return message, values
