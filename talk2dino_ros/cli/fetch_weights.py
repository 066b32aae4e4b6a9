"""``fetch_weights``: download the published checkpoints into a cache directory and verify them.

Examples::

    fetch_weights                         # Talk2DINO ViT-B: DINOv2-B reg4, OpenAI CLIP B/16, ψ
    fetch_weights --variant dinov3_vitb   # Talk2DINO DINOv3 ViT-B (gated: accept the DINOv3 License
                                          # on Hugging Face and export HF_TOKEN first)
    fetch_weights --method clip_dinoiser  # LAION OpenCLIP B/16 + last.pt
    fetch_weights --all --dir /data/weights
    fetch_weights --list
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from talk2dino_ros import catalog
from talk2dino_ros.model.checkpoints import git_blob_sha1, sha256_file
from talk2dino_ros.model.pretrained import DEFAULT_WEIGHTS_DIR, PRETRAINED, PretrainedFile, bundle

CHUNK = 1 << 20
#: a Hugging Face access token, sent only to huggingface.co (gated files such as DINOv3 need one)
HF_TOKEN_ENV = 'HF_TOKEN'


class FetchError(Exception):
    """A download or verification failure (one readable line)."""


def verify(path: Path, spec: PretrainedFile, shown: Optional[Path] = None) -> None:
    """Check size and checksum of a downloaded file; raise FetchError naming what differs (and naming
    ``shown`` instead of ``path`` when given: a download is checked in its temporary file)."""
    name = shown or path
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise FetchError(f'{name}: size {size} B, expected {spec.size} B')
    if spec.approx_size is not None and abs(size - spec.approx_size) > 0.05 * spec.approx_size:
        raise FetchError(f'{name}: size {size} B, expected about {spec.approx_size} B')
    if spec.sha256 and sha256_file(path) != spec.sha256:
        raise FetchError(f'{name}: SHA256 does not match the published {spec.sha256[:12]}…')
    if spec.git_blob and not spec.sha256 and git_blob_sha1(path) != spec.git_blob:
        raise FetchError(f'{name}: git blob id does not match the pinned {spec.git_blob[:12]}…')


def check_network(url: str, timeout: float) -> None:
    """Fail fast when the host cannot be resolved/reached, instead of hanging on a download."""
    host = urllib.request.urlparse(url).hostname or ''
    try:
        socket.getaddrinfo(host, 443)
        with socket.create_connection((host, 443), timeout=timeout):
            pass
    except OSError as exc:
        raise FetchError(f'cannot reach {host} ({exc.__class__.__name__}: {exc}); this machine looks offline — '
                         'download the files elsewhere (`fetch_weights --list` shows the URLs) and copy them '
                         f'into the weights directory') from None


def download(spec: PretrainedFile, dest_dir: Path, timeout: float = 30.0, force: bool = False,
             progress: bool = True) -> Path:
    """Download one file (atomic rename after verification); an existing verified file is kept."""
    dest = dest_dir / spec.filename
    if dest.exists() and not force:
        try:
            verify(dest, spec)
            print(f'ok       {dest} (already present, verified)')
            return dest
        except FetchError as exc:
            print(f'refetch  {dest}: {exc}')
    check_network(spec.url, timeout)
    dest_dir.mkdir(parents=True, exist_ok=True)
    from talk2dino_ros.atomic_files import atomic_open

    # the temporary file is removed when the download or the check fails; dest changes only when both pass
    with atomic_open(dest, 'wb') as out:
        try:
            req = urllib.request.Request(spec.url, headers=request_headers(spec.url))
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                total = int(resp.headers.get('Content-Length') or 0) or None
                bar = None
                if progress:
                    from tqdm import tqdm
                    bar = tqdm(total=total, unit='B', unit_scale=True, desc=spec.filename)
                for block in iter(lambda: resp.read(CHUNK), b''):
                    out.write(block)
                    if bar:
                        bar.update(len(block))
                if bar:
                    bar.close()
            out.flush()
        except urllib.error.HTTPError as exc:
            hint = ''
            if spec.gated and exc.code in (401, 403):
                hint = (f'; {spec.filename} is gated: accept its licence on the model page, then export '
                        f'{HF_TOKEN_ENV}=<your Hugging Face token> ({spec.licence})')
            raise FetchError(f'download of {spec.url} failed: {exc}{hint}') from None
        except (urllib.error.URLError, OSError) as exc:
            raise FetchError(f'download of {spec.url} failed: {exc}') from None
        verify(Path(out.name), spec, shown=dest)
    print(f'fetched  {dest}')
    return dest


def request_headers(url: str) -> Dict[str, str]:
    """HTTP headers for a download; ``$HF_TOKEN`` goes to huggingface.co only, never to another host."""
    headers = {'User-Agent': 'talk2dino_ros-fetch_weights'}
    token = os.environ.get(HF_TOKEN_ENV, '').strip()
    if token and urllib.request.urlparse(url).hostname == 'huggingface.co':
        headers['Authorization'] = f'Bearer {token}'
    return headers


def fetchable_variants() -> List[str]:
    """Variant names whose every file is published (the ``--variant`` choices)."""
    out: List[str] = []
    for m in catalog.METHODS.values():
        out += [v.name for v in m.variants if v.fully_published and v.name not in out]
    return out


def _selected(args) -> List[PretrainedFile]:
    if args.all:
        return list(PRETRAINED.values())
    if args.names:
        unknown = [n for n in args.names if n not in PRETRAINED]
        if unknown:
            raise FetchError(f'unknown weight names {unknown}; see --list')
        return [PRETRAINED[n] for n in args.names]
    try:
        hint = catalog.unpublished_hint(args.method, args.variant)
        if hint:  # e.g. vits: its backbone is published, its ψ is not
            variant = catalog.get_variant(args.method, args.variant)
            names = ' '.join(variant.published[r] for r in variant.roles if r in variant.published)
            raise FetchError(f'{hint}; the published files of {variant.name} come with `fetch_weights {names}`')
        return list(bundle(args.method, args.variant).values())
    except catalog.CatalogError as exc:
        raise FetchError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``fetch_weights`` (method and variant choices come from the catalog)."""
    p = argparse.ArgumentParser(prog='fetch_weights', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('names', nargs='*', help='registry names (default: the bundle of --method/--variant)')
    p.add_argument('--method', default=catalog.DEFAULT_METHOD, choices=catalog.method_names(),
                   help=f'whose published files to download (default {catalog.DEFAULT_METHOD})')
    p.add_argument('--variant', default=catalog.get_method(catalog.DEFAULT_METHOD).default_variant,
                   choices=catalog.variant_names(),
                   help=f'backbone (Talk2DINO; ignored for single-backbone methods); fully published: '
                        f'{", ".join(fetchable_variants())}')
    p.add_argument('--all', action='store_true', help='every published file')
    p.add_argument('--dir', type=Path, default=DEFAULT_WEIGHTS_DIR, help=f'cache directory (default {DEFAULT_WEIGHTS_DIR})')
    p.add_argument('--timeout', type=float, default=15.0, help='network timeout in seconds')
    p.add_argument('--force', action='store_true', help='download even if a verified file exists')
    p.add_argument('--list', action='store_true', help='print the registry and exit')
    return p


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    if args.list:
        for f in PRETRAINED.values():
            check = f'sha256 {f.sha256[:12]}…' if f.sha256 else (
                f'git blob {f.git_blob[:12]}…' if f.git_blob else ('size only' if f.size or f.approx_size
                                                                    else 'loader check only'))
            print(f'{f.name:26s} {f.role:14s} {f.filename:34s} {check}\n{"":26s} {f.url}')
            if f.licence:
                print(f'{"":26s} licence: {f.licence}')
        return 0
    try:
        paths = [download(spec, args.dir.expanduser(), args.timeout, args.force) for spec in _selected(args)]
    except FetchError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an unwritable --dir: one line, not a traceback
        where = exc.filename if exc.filename is not None else args.dir.expanduser()
        print(f'error: cannot write to {where}: {exc.strerror or exc}', file=sys.stderr)
        return 2
    print(f'{len(paths)} file(s) in {args.dir.expanduser()}; pass --weights-dir {args.dir} (or the '
          'node parameter weights_dir) to use them')
    return 0


if __name__ == '__main__':
    sys.exit(main())
