"""Reading a bag the node or segment_bag wrote, for assertions."""
from __future__ import annotations

from typing import Dict, List, Tuple


def read_bag(path) -> Dict[str, List[Tuple[int, object, bytes, str]]]:
    """topic -> [(bag timestamp, deserialized message or None, raw bytes, msgtype)] in bag order."""
    from talk2dino_ros.bags import bag_io

    store = bag_io.make_typestore()
    out: Dict[str, list] = {}
    reader = bag_io.open_bag(path)
    try:
        for conn, t, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype) if conn.msgtype in store.types else None
            out.setdefault(conn.topic, []).append((t, msg, bytes(raw), conn.msgtype))
    finally:
        reader.close()
    return out
