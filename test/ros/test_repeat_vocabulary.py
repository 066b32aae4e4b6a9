"""The same vocabulary again (topic, service or parameter) is a no-op: no new version, no new legend."""
import time

from rclpy.parameter import Parameter
from std_msgs.msg import String

from helpers.ros import NODE, wait_for
from talk2dino_ros.msg import ClassInfo
from talk2dino_ros.ros.qos import latched_qos
from talk2dino_ros.srv import SetVocabulary


def test_the_same_vocabulary_again_keeps_the_version_and_publishes_no_legend(make_node):
    node, probe, _ = make_node()
    wait_for(lambda: node.segmenter is not None, what='model')
    probe.listen(NODE + '/class_info', ClassInfo, latched_qos())
    probe.vocab_pub.publish(String(data='cat, dog'))
    wait_for(lambda: [m.vocabulary_version for m in probe.got(NODE + '/class_info')] == [1], what='legend v1')

    probe.vocab_pub.publish(String(data='cat, dog'))            # the topic again
    client = probe.create_client(SetVocabulary, NODE + '/set_vocabulary')
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(SetVocabulary.Request(names=['cat', ' dog ']))   # the service, same names
    response = wait_for(lambda: future.done() and future.result(), what='service answer')
    assert response.success and 'unchanged' in response.message
    assert node.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, ['cat', 'dog'])])[0].successful
    time.sleep(0.5)
    assert node.legend_state.version == 1
    assert [m.vocabulary_version for m in probe.got(NODE + '/class_info')] == [1]

    probe.vocab_pub.publish(String(data='cat, dog, bird'))      # a real change still counts
    wait_for(lambda: node.legend_state.version == 2, what='legend v2')
