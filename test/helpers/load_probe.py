"""Load crafted weight files one by one and report, per file, the error, the time and the peak memory.

Run as a child process (``python load_probe.py FILE LOADER [FILE LOADER ...]``) so a reader that blows
up costs the child, not the test run: its address space is capped, each load has an alarm, and the
peak RSS is reset before each load (``/proc/self/clear_refs``) to measure that load alone.
"""
import json
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


def main(argv):
    from talk2dino_ros.model.backbone import build_backbone
    from talk2dino_ros.model.checkpoints import load_state_dict_file
    from talk2dino_ros.model.text import build_clip_text_encoder
    loaders = {'clip': lambda p: build_clip_text_encoder(p, quick_gelu=True),
               'pth': lambda p: load_state_dict_file(p, 'DINOv2'),
               'dinov2': lambda p: build_backbone(p)}
    # headroom for a reader that stays within budget, not for one that does not
    cap = _status('VmSize') + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    signal.signal(signal.SIGALRM, _alarm)
    for path, loader in zip(argv[::2], argv[1::2]):
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        before = _status('VmHWM')
        start = time.perf_counter()
        signal.alarm(10)
        try:
            loaders[loader](path)
            error = ('', '')
        except BaseException as exc:  # noqa: BLE001  the report says what it was
            error = (type(exc).__name__, str(exc))
        finally:
            signal.alarm(0)
        print(json.dumps({'path': path, 'error': error[0], 'message': error[1][:2000],
                          'seconds': time.perf_counter() - start, 'peak_bytes': _status('VmHWM') - before}),
              flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
