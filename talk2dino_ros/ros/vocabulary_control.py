"""Everything the node does with its vocabulary: the topic, the service, the parameter and the legend.

What it guarantees:

* **Callbacks never wait.** Encoding a vocabulary runs on the node's control thread
  (:class:`~talk2dino_ros.ros.control_worker.ControlJobs`); frames keep flowing on the old vocabulary
  meanwhile. ``~/set_vocabulary`` is an async service callback: it answers when the new vocabulary is
  installed (or failed) while the executor goes on serving images, parameters and timers.
* **The vocabulary topic is relative** (``t2d/vocab``: ``/t2d/vocab`` at the root, and it follows the node
  namespace, with no remap needed) and has two subscriptions, transient-local and volatile, so both a
  latched publisher and a plain ``ros2 topic pub`` are heard; a sample that both deliver is applied once.
* **The newest vocabulary wins**: :mod:`talk2dino_ros.ros.vocabulary_order` puts the two subscriptions'
  samples back in their publishers' order; the service and the parameter follow in arrival order; the
  control jobs run in that order (a queued topic or parameter change is skipped when a newer one follows).
* **The ``vocabulary`` parameter follows** the vocabulary in use, whichever way it came (topic, service,
  parameter), and is set before the new legend is swapped in: it always reads the last change applied.
* An incompatible vocabulary publisher is explained in ``/diagnostics`` (an
  :class:`~talk2dino_ros.ros.input_watch.InputWatch`).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from talk2dino_ros.ros.control_worker import ControlJobs
from talk2dino_ros.ros.engine_host import EngineHost, LegendState
from talk2dino_ros.ros.input_watch import InputWatch
from talk2dino_ros.ros.parameters import NodeSettings
from talk2dino_ros.ros.qos import create_overridable, latched_qos, vocabulary_volatile_qos
from talk2dino_ros.ros.vocabulary import MAX_NAMES, ParsedVocabulary, parse_vocabulary
from talk2dino_ros.ros.vocabulary_order import HOLD_S, Held, VocabularyOrder, sample_id

#: the node's vocabulary topic, relative: ``/t2d/vocab`` at the root, ``/<ns>/t2d/vocab`` in a namespace, however
#: the node is started (ros2 run, launch, the console script); ``-r t2d/vocab:=/other`` moves it
VOCAB_TOPIC = 't2d/vocab'
#: requests ~/set_vocabulary keeps while busy (the ROS default of 10 loses the rest of a burst)
SERVICE_DEPTH = 100

Outcome = Tuple[bool, str]


class VocabularyControl:
    """The node's vocabulary inputs and the one path every vocabulary change takes.

    ``node`` is the rclpy node (entities, logging, the ``vocabulary`` parameter); ``settings`` returns the
    node's current settings; ``legend_changed`` is called whenever a new legend is in use.
    """

    def __init__(self, node: Any, host: EngineHost, jobs: ControlJobs, settings: Callable[[], NodeSettings],
                 legend_changed: Callable[[], None]) -> None:
        self._node, self._host, self._jobs = node, host, jobs
        self._settings, self._legend_changed = settings, legend_changed
        self._logger = node.get_logger()
        # thread id while this object sets 'vocabulary' (other threads' changes are still validated)
        self._syncing_param: Optional[int] = None
        self._sync_lock = threading.Lock()
        self._order = VocabularyOrder()
        self._held: Optional[Held] = None  # a transient-local sample waiting for its volatile copy
        self._hold_timer: Any = None
        self._service_group = ReentrantCallbackGroup()
        self._entities: List[Any] = []
        self._watch: Optional[InputWatch] = None

    # ------------------------------------------------------------------ names
    @property
    def topic(self) -> str:
        """The resolved vocabulary topic (``/t2d/vocab`` at the root, ``/<ns>/t2d/vocab`` in a namespace)."""
        return self._node.resolve_topic_name(VOCAB_TOPIC)

    def max_classes(self) -> int:
        return int(self._settings().max_classes or MAX_NAMES)

    def parse(self, source) -> ParsedVocabulary:
        """:func:`parse_vocabulary` with the node's ``max_classes``."""
        return parse_vocabulary(source, max_names=self.max_classes())

    def log_parse(self, source: str, parsed: ParsedVocabulary) -> None:
        if parsed.rejected or not parsed.accepted:
            self._logger.warning(f'{source}: {parsed.summary()}')
        if not parsed.accepted:
            self._logger.error(f'{source}: no usable class name; keeping the current vocabulary')

    def use_start_value(self) -> None:
        """Take the ``vocabulary`` parameter's start value (encoded once a model is loaded)."""
        initial = self._settings().vocabulary_names
        if initial:
            parsed = self.parse(list(initial))
            self._host.set_names(parsed.accepted)
            self.log_parse('vocabulary parameter', parsed)

    # ------------------------------------------------------------------ inputs
    def create_inputs(self) -> None:
        """Two vocabulary subscriptions (latched and volatile) and the ``~/set_vocabulary`` service."""
        from talk2dino_ros.srv import SetVocabulary

        node = self._node
        latched, volatile = latched_qos(), vocabulary_volatile_qos()
        # a volatile publisher is expected to miss the latched subscription: the volatile one takes it
        quiet = SubscriptionEventCallbacks(incompatible_qos=self._on_latched_incompatible)
        self._hold_timer = node.create_timer(HOLD_S, self._release_held)
        self._hold_timer.cancel()  # armed by a transient-local sample
        # qos_overrides.<topic>.subscription.* (the one plain publishers meet) and .subscription_latched.*
        self._entities = [
            create_overridable(node, 'subscription', String, VOCAB_TOPIC, latched, self._on_latched,
                               event_callbacks=quiet, entity_id='latched'),
            create_overridable(node, 'subscription', String, VOCAB_TOPIC, volatile, self._on_volatile),
            node.create_service(SetVocabulary, '~/set_vocabulary', self._on_set_vocabulary,
                                qos_profile=QoSProfile(depth=SERVICE_DEPTH, reliability=ReliabilityPolicy.RELIABLE),
                                callback_group=self._service_group),
            self._hold_timer,
        ]
        profiles = tuple(sub.qos_profile for sub in self._entities[:2])  # after their qos_overrides
        self._watch = InputWatch(node, self.topic, profiles, 'a vocabulary', only_incompatible=True)

    def destroy_inputs(self) -> None:
        for entity in self._entities:
            if hasattr(entity, 'srv_type'):
                self._node.destroy_service(entity)
            elif hasattr(entity, 'timer_period_ns'):
                self._node.destroy_timer(entity)
            else:
                self._node.destroy_subscription(entity)
        self._entities = []
        self._held = self._hold_timer = None
        self._watch = None

    def diagnostics(self) -> Dict[str, str]:
        """Key/values for ``/diagnostics`` when a vocabulary publisher cannot reach the node."""
        diagnosis = self._watch.check() if self._watch is not None else None
        if diagnosis is None:
            return {}
        return {'vocabulary_topic': diagnosis.topic,
                'vocabulary_qos_incompatible': diagnosis.values['input_qos_incompatible']}

    def _on_latched_incompatible(self, event: Any) -> None:
        self._logger.debug(f'{self.topic}: a volatile publisher is served by the volatile '
                           f'subscription ({event.last_policy_kind})')

    # two required arguments: rclpy then passes the message info (the writer's GID and sequence number)
    def _on_volatile(self, msg: String, info: Optional[dict]) -> None:
        if self._order.from_volatile(sample_id(msg.data, info, time.monotonic())):
            self._take_message(msg.data)

    def _on_latched(self, msg: String, info: Optional[dict]) -> None:
        held = self._order.from_latched(sample_id(msg.data, info, time.monotonic()), msg.data)
        if held is not None and self._hold_timer is not None:  # wait for its volatile copy (in order)
            self._held = held
            self._hold_timer.reset()

    def _release_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        held, self._held = self._held, None
        if held is not None and self._order.release(held):
            self._take_message(held.payload)

    def _take_message(self, text: str) -> None:
        """A topic sample newer than everything taken before: parse it and queue the change."""
        if self._watch is not None:
            self._watch.event()
        topic = self.topic
        parsed = self.parse(text)
        self.log_parse(topic, parsed)
        if parsed.accepted:
            def done(outcome: Outcome) -> None:
                if not outcome[0]:
                    self._logger.error(f'{topic}: {outcome[1]}')
            self.submit(parsed.accepted, sync_parameter=True, done=done, coalesce=True)

    async def _on_set_vocabulary(self, request, response):
        parsed = self.parse(list(request.names))
        self.log_parse('~/set_vocabulary', parsed)
        response.rejected = [r.name for r in parsed.rejected]
        if not parsed.accepted:
            response.success = False
            response.message = f'vocabulary unchanged: no usable class name ({parsed.summary()})'
            response.accepted = list(self._host.names)
            return response
        from rclpy.task import Future
        future = Future(executor=self._node.executor)
        self._order.local_change()
        self.submit(parsed.accepted, sync_parameter=True, done=future.set_result)
        ok, why = await future
        response.success = bool(ok)
        response.accepted = list(self._host.names)
        response.message = parsed.summary() + (f'; {why}' if why else '')
        return response

    # ------------------------------------------------------------------ the parameter
    @property
    def syncing_parameter(self) -> bool:
        """True on the thread that is setting the ``vocabulary`` parameter to the names in use."""
        return self._syncing_param == threading.get_ident()

    def parameters_changed(self, names: Set[str]) -> None:
        """A legend parameter changed (``names``: the parameters set): apply it on the control thread."""
        if 'vocabulary' not in names and not self._host.names:
            return
        new_names = None
        if 'vocabulary' in names:
            parsed = self.parse(list(self._settings().vocabulary_names))
            self.log_parse('vocabulary parameter', parsed)
            new_names = parsed.accepted
            self._order.local_change()  # newer than a transient-local sample still held

        def done(outcome: Outcome) -> None:
            if not outcome[0]:
                self._logger.error(f'parameter change not applied: {outcome[1]}')
        self.submit(new_names, sync_parameter=new_names is not None, done=done, coalesce=True)

    def _sync_parameter(self, names: Sequence[str]) -> None:
        """Keep the 'vocabulary' parameter equal to the vocabulary in use (after a topic/service change)."""
        with self._sync_lock:
            self._syncing_param = threading.get_ident()
            try:
                self._node.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, list(names))])
            finally:
                self._syncing_param = None

    # ------------------------------------------------------------------ applying
    def submit(self, names: Optional[Sequence[str]], sync_parameter: bool = True,
               done: Optional[Callable[[Outcome], None]] = None, coalesce: bool = False) -> None:
        """Apply a vocabulary (``None``: rebuild the legend) on the control thread; ``done((ok, why))`` runs
        on the executor thread afterwards.

        With ``sync_parameter`` the ``vocabulary`` parameter is set to the new names *before* the legend is
        swapped in (and set back if encoding fails), so whoever sees the new legend sees the parameter too;
        every path syncs, so the parameter always ends on the vocabulary of the last change applied.
        """
        names = tuple(names) if names is not None else None

        def run() -> Outcome:
            target = names
            limit = self.max_classes()
            if target is None and len(self._host.names) > limit:
                # max_classes was lowered: the rebuilt legend keeps the first names, the parameter follows
                target = self._host.names[:limit]
                self._logger.warning(f'max_classes is {limit}: keeping the first '
                                     f'{len(target)} of {len(self._host.names)} classes')
                self._sync_parameter(target)
                return self.apply(target, sync_parameter=False)
            # compared with the parameter, not the legend: a change queued before this one may have set it
            synced = (names is not None and sync_parameter
                      and tuple(self._settings().vocabulary_names or ()) != names)
            if synced:
                self._sync_parameter(names)
            outcome = self.apply(names, sync_parameter=False)
            if synced and not outcome[0]:
                self._sync_parameter(self._host.names)
            return outcome
        self._jobs.submit('vocabulary', run, done or (lambda outcome: None), coalesce)

    def apply(self, names: Optional[Sequence[str]] = None, sync_parameter: bool = True) -> Outcome:
        """Use these (already validated) names now, or rebuild the legend from the current ones (blocking).

        Returns (success, message). Without a model the names are kept for when it is loaded.
        """
        outcome = self._host.apply_vocabulary(names, self._settings())
        if outcome.state is not None:
            self.legend_installed(outcome.state)
        if names is not None and sync_parameter and outcome.ok:
            self._sync_parameter(self._host.names)
        return outcome.ok, outcome.message

    def legend_installed(self, state: LegendState) -> None:
        """A new legend is in use (after a vocabulary change or a model load): log it and tell the node."""
        self._legend_changed()
        self._logger.info(
            f'vocabulary v{state.version} ({state.method}): {len(state.names)} classes: '
            + ', '.join(state.names[:20]) + (' ...' if len(state.names) > 20 else ''))
