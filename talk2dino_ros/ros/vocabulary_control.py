"""Everything the node does with its vocabulary: the topic, the service, the parameter and the legend.

What it guarantees:

* **Callbacks never wait.** Encoding a vocabulary runs on the node's control thread
  (:class:`~talk2dino_ros.ros.control_worker.ControlJobs`); frames keep flowing on the old vocabulary
  meanwhile. ``~/set_vocabulary`` is an async service callback: it answers when the new vocabulary is
  installed (or failed) while the executor goes on serving images, parameters and timers.
* **The vocabulary topic is relative** (``t2d/vocab``: ``/t2d/vocab`` at the root, and it follows the node
  namespace, with no remap needed) and has two subscriptions, transient-local and volatile, so both a
  latched publisher and a plain ``ros2 topic pub`` are heard; a sample that both deliver is applied once.
* **The ``vocabulary`` parameter follows** the vocabulary in use, whichever way it came (topic, service,
  parameter), and is set before the new legend is swapped in.
* An incompatible vocabulary publisher is explained in ``/diagnostics`` (an
  :class:`~talk2dino_ros.ros.input_watch.InputWatch`).
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from std_msgs.msg import String

from talk2dino_ros.ros.control_worker import ControlJobs
from talk2dino_ros.ros.engine_host import EngineHost, LegendState
from talk2dino_ros.ros.input_watch import InputWatch
from talk2dino_ros.ros.parameters import NodeSettings
from talk2dino_ros.ros.qos import create_overridable, latched_qos, vocabulary_volatile_qos
from talk2dino_ros.ros.vocabulary import MAX_NAMES, ParsedVocabulary, parse_vocabulary

#: the node's vocabulary topic, relative: ``/t2d/vocab`` at the root, ``/<ns>/t2d/vocab`` in a namespace, however
#: the node is started (ros2 run, launch, the console script); ``-r t2d/vocab:=/other`` moves it
VOCAB_TOPIC = 't2d/vocab'
#: how many recent vocabulary samples are remembered to drop the copy the second subscription delivers
_SEEN_SAMPLES = 32

Outcome = Tuple[bool, str]


def sample_key(msg: Any, info: Optional[dict], now: float) -> Tuple:
    """Identity of one published sample, the same for both subscriptions that deliver it.

    DDS gives each sample its writer's GID, a sequence number and a source timestamp; where the
    middleware reports none of them the text and a 1 s time bucket stand in.
    """
    info = info or {}
    gid = info.get('publisher_gid')
    if isinstance(gid, dict):
        gid = bytes(gid.get('data') or ())
    source = int(info.get('source_timestamp') or 0)
    if source:
        return ('sample', gid, info.get('publication_sequence_number'), source, msg.data)
    return ('text', msg.data, int(now))


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
        self._seen_samples: Deque[Tuple] = collections.deque(maxlen=_SEEN_SAMPLES)
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
        # qos_overrides.<topic>.subscription.* (the one plain publishers meet) and .subscription_latched.*
        self._entities = [
            create_overridable(node, 'subscription', String, VOCAB_TOPIC, latched, self._on_message,
                               event_callbacks=quiet, entity_id='latched'),
            create_overridable(node, 'subscription', String, VOCAB_TOPIC, volatile, self._on_message),
            node.create_service(SetVocabulary, '~/set_vocabulary', self._on_set_vocabulary,
                                callback_group=self._service_group),
        ]
        profiles = tuple(sub.qos_profile for sub in self._entities[:2])  # after their qos_overrides
        self._watch = InputWatch(node, self.topic, profiles, 'a vocabulary', only_incompatible=True)

    def destroy_inputs(self) -> None:
        for entity in self._entities:
            if hasattr(entity, 'srv_type'):
                self._node.destroy_service(entity)
            else:
                self._node.destroy_subscription(entity)
        self._entities = []
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

    def _on_message(self, msg: String, info: Optional[dict]) -> None:
        # two required arguments: rclpy then passes the message info (the writer's GID and sequence number)
        key = sample_key(msg, info, time.monotonic())
        if key in self._seen_samples:
            return  # the other subscription's copy of a sample already applied
        self._seen_samples.append(key)
        if self._watch is not None:
            self._watch.event()
        topic = self.topic
        parsed = self.parse(msg.data)
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

        def done(outcome: Outcome) -> None:
            if not outcome[0]:
                self._logger.error(f'parameter change not applied: {outcome[1]}')
        self.submit(new_names, sync_parameter=False, done=done, coalesce=True)

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
        swapped in (and set back if encoding fails), so whoever sees the new legend sees the parameter too.
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
            synced = names is not None and sync_parameter and names != self._host.names
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
