"""The node publishes exactly the outputs of the contract table, with the table's types and QoS."""
from rclpy.qos import DurabilityPolicy

from helpers.ros import NODE, wait_for
from talk2dino_ros.contract.outputs import QOS, node_outputs
from talk2dino_ros.ros.frame_outputs import _available


def _expected(prefix):
    out = {}
    for spec in node_outputs():
        if spec.family or not _available(spec):
            continue
        topic = spec.topic if not spec.per_camera else f'{prefix}/{spec.topic}'
        out[topic] = spec
    return out


def test_node_publishers_are_the_table(make_node):
    node, _, _ = make_node(vocabulary=['red car', 'tree'])
    expected = _expected(NODE)
    wanted = set(expected) | {NODE + '/mask/red_car', NODE + '/mask/tree'}

    def ours():
        published = dict(node.get_publisher_names_and_types_by_node('talk2dino', '/'))
        return {t: types for t, types in published.items() if t.startswith(NODE + '/') or t == '/diagnostics'}
    # the ROS graph learns of new publishers asynchronously: wait until it has settled on the node's topics
    try:
        wait_for(lambda: set(ours()) == wanted, timeout=15.0, what='the node\'s publishers in the graph')
    except AssertionError:
        pass  # the assert below names the topics that differ
    found = ours()
    assert set(found) == wanted, (sorted(set(found) - wanted), sorted(wanted - set(found)))
    for topic, spec in expected.items():
        assert found[topic] == [spec.msg_type], topic
        infos = node.get_publishers_info_by_topic(topic)
        durability = infos[0].qos_profile.durability
        assert (durability == DurabilityPolicy.TRANSIENT_LOCAL) == (spec.cadence == 'latched'), topic
    # the graph does not carry the history depth: read it from the node's own publishers
    pubs = node.outputs_for().pubs
    for spec in expected.values():
        if spec.name in pubs:
            assert pubs[spec.name].qos_profile.depth == QOS[spec.qos].depth, spec.name  # masks: 1, bounded memory
