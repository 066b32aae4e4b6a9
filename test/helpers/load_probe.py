"""Load crafted weight files one by one and report, per file, the error, the time and the peak memory.

Run as a child process (``python load_probe.py FILE LOADER [FILE LOADER ...]``) so a reader that blows
up costs the child, not the test run. Each file is loaded in its own fork of the warmed-up probe (torch
and the loaders already imported), whose peak RSS above its starting RSS is that load's cost; the fork's
address space is capped and the load has an alarm.
"""
import json
import os
import re
import resource
import signal
import sys
import time


def _status(field: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(field + r':\s+(\d+)', f.read()).group(1)) * 1024


def _alarm(signum, frame):
    raise TimeoutError('load still running after the alarm')


def _load_one(loader, path: str) -> dict:
    # headroom for a reader that stays within budget, not for one that does not
    cap = _status('VmSize') + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    signal.signal(signal.SIGALRM, _alarm)
    before = _status('VmRSS')
    start = time.perf_counter()
    signal.alarm(10)
    try:
        loader(path)
        error = ('', '')
    except BaseException as exc:  # noqa: BLE001  the report says what it was
        error = (type(exc).__name__, str(exc))
    finally:
        signal.alarm(0)
    return {'path': path, 'error': error[0], 'message': error[1][:2000],
            'seconds': time.perf_counter() - start, 'peak_bytes': _status('VmHWM') - before}


def main(argv):
    from talk2dino_ros.model.backbone import build_backbone
    from talk2dino_ros.model.checkpoints import load_state_dict_file
    from talk2dino_ros.model.text import build_clip_text_encoder
    loaders = {'clip': lambda p: build_clip_text_encoder(p, quick_gelu=True),
               'pth': lambda p: load_state_dict_file(p, 'DINOv2'),
               'dinov2': lambda p: build_backbone(p)}
    for path, loader in zip(argv[::2], argv[1::2]):
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the fork starts with the parent's resident pages: its peak above them is this load
            try:
                print(json.dumps(_load_one(loaders[loader], path)), flush=True)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


if __name__ == '__main__':
    main(sys.argv[1:])
