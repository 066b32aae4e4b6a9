"""The per-class mask publishers come and go with the vocabulary without leaving anything behind."""
from helpers.ros import wait_for
from helpers.segmenters import FakeFactory


def test_vocabulary_churn_leaves_no_entities_behind(make_node):
    node, _, _ = make_node(vocabulary=['a', 'b'], factory=FakeFactory())
    wait_for(lambda: set(node.outputs_for().mask_pubs) == {'a', 'b'}, what='the first mask publishers')
    group = node.default_callback_group
    baseline = len(group.entities)
    for i in range(20):
        names = [f'thing{i}x{j}' for j in range(5)]
        assert node.apply_vocabulary(names)[0]
        wait_for(lambda: set(node.outputs_for().mask_pubs) == set(names), what=f'mask publishers {i}')
    # 100 publishers made and 95 destroyed: what the callback group holds must not grow with them
    # (each publisher's two QoS event handlers left a dead reference there, and ~0.25 kB of memory with them)
    assert len(group.entities) <= baseline + 2 * 5
