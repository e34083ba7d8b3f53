"""Summarise a py-spy ``--format raw`` profile (collapsed stacks) of the daemon.

``python -m bench.profile FILE [--top N] [--match TEXT] [--busy]``: the functions with
the most samples by themselves ("self") and anywhere in the stack ("total"), as a share
of the samples kept. ``--match`` keeps only stacks through a frame containing TEXT;
``--busy`` drops samples of the event loop waiting in ``epoll`` (py-spy's idle detection
misses some of those under ``--nonblocking``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

_REPO = f"{Path(__file__).resolve().parent.parent}/"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    """``func (…/site-packages/pkg/mod.py:12)`` -> ``pkg/mod.py:func``."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3", _REPO):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{m.group('func')}"


IDLE_LEAVES = frozenset({"selectors.py:EpollSelector.select"})


def load(path: Path, match: str = "", busy: bool = False) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if match and match not in stack:
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if f.strip()]
        if not frames or (busy and frames[-1] in IDLE_LEAVES):
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    return own, total, samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only stacks through a frame with this text")
    parser.add_argument("--busy", action="store_true", help="drop samples waiting in epoll")
    args = parser.parse_args(argv)
    own, total, samples = load(args.file, args.match, args.busy)
    if not samples:
        print("no samples", file=sys.stderr)
        return 1
    print(f"{samples} samples kept (all threads)")
    for title, counts in (("self", own), ("total", total)):
        print(f"\n{title:>6}  function")
        for name, count in counts.most_common(args.top):
            print(f"{100 * count / samples:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
