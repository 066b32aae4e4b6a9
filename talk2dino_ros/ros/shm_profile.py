"""A shared-memory segment big enough for camera frames, for publishers on Fast DDS (the default RMW).

Fast DDS hands a sample to a subscriber on the same machine through its shared-memory transport only when
it fits the writer's segment (512 KiB by default). A 640x480 rgb8 frame (900 KiB) does not, so it goes over
UDP in 64 KiB fragments, and a best-effort subscriber (the segmentation node's default, the sensor-data
profile) loses every frame one fragment of which is dropped: 10 to 50 % of the frames on a busy machine.
A larger segment on the *publisher* fixes it for every same-host subscriber, whatever its QoS.

Fast DDS reads the segment size only from an XML profile named by ``FASTDDS_DEFAULT_PROFILES_FILE`` before
the ROS context starts. :func:`large_frame_profile` writes one (the built-in transports stay, so other
machines are still reached over UDP) unless the user has a profile of their own or another RMW is chosen.
"""
from __future__ import annotations

import os
import tempfile
from typing import Mapping, Optional

#: Fast DDS's default shared-memory segment (bytes)
DEFAULT_SEGMENT = 512 * 1024
#: frames in flight a segment holds (history depth 5 plus the one being written and slack)
FRAMES_PER_SEGMENT = 8
PROFILE_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
FAST_DDS_RMWS = ('', 'rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')

_PROFILE = '''<?xml version="1.0" encoding="UTF-8"?>
<!-- written by talk2dino_ros: a shared-memory segment that holds {frames} camera frames -->
<profiles xmlns="http://www.eprosima.com">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>t2d_large_frames_shm</transport_id>
      <type>SHM</type>
      <segment_size>{size}</segment_size>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="t2d_large_frames" is_default_profile="true">
    <rtps>
      <userTransports><transport_id>t2d_large_frames_shm</transport_id></userTransports>
      <useBuiltinTransports>true</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
'''


def segment_size(frame_bytes: int) -> int:
    """Bytes of a segment that holds :data:`FRAMES_PER_SEGMENT` frames (0 when the default one does)."""
    if frame_bytes * 2 <= DEFAULT_SEGMENT:
        return 0
    return FRAMES_PER_SEGMENT * frame_bytes


def needs_profile(frame_bytes: int, env: Mapping[str, str]) -> bool:
    """True when Fast DDS is the RMW, the user has no XML profile and the frames outgrow the default segment."""
    if any(env.get(var) for var in PROFILE_VARS):
        return False
    if env.get('RMW_IMPLEMENTATION', '') not in FAST_DDS_RMWS:
        return False
    return segment_size(frame_bytes) > 0


def large_frame_profile(frame_bytes: int, env: Optional[dict] = None) -> Optional[str]:
    """Write the profile and point ``env`` (default ``os.environ``) at it; returns its path or None.

    Call before ``rclpy.init``; the caller removes the file when it is done.
    """
    env = os.environ if env is None else env
    if not needs_profile(frame_bytes, env):
        return None
    handle, path = tempfile.mkstemp(prefix='t2d_fastdds_', suffix='.xml')
    with os.fdopen(handle, 'w', encoding='utf-8') as out:
        out.write(_PROFILE.format(size=segment_size(frame_bytes), frames=FRAMES_PER_SEGMENT))
    env['FASTDDS_DEFAULT_PROFILES_FILE'] = path
    return path
