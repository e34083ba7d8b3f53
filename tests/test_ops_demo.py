"""``skbridge demo``: the scripted conversation, as a real process, with no config or tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STEPS = [
    'Ada Lovelace writes to @skbridge_bot: "Hi! My order #1234',
    "skbridge created the channel #sk-ada-lovelace",
    '#sk-ada-lovelace, posted as "Ada Lovelace": Hi! My order #1234',
    "#support, posted by skbridge: New conversation with Ada Lovelace (Telegram): "
    "#sk-ada-lovelace  [Join]  [Claim]  [Open channel]",
    "the workspace owner, is invited to #sk-ada-lovelace",
    "Alice presses Claim in #support",
    "#sk-ada-lovelace, posted by skbridge: :raising_hand: Alice is on it.",
    "the #support notice now says: Alice is on it.",
    "Alice, in #sk-ada-lovelace: /sk Sorry about that",
    'Ada receives: "Alice: Sorry about that',
    '#sk-ada-lovelace, posted as "Alice": To Ada Lovelace: Sorry about that',
    'Ada sends a photo (2,020 bytes): "This is the order confirmation',
    "#sk-ada-lovelace, posted by skbridge: Ada Lovelace sent a photo: / This is the order "
    "confirmation, if it helps  [file photo-",
    "Alice shares invoice.pdf in #sk-ada-lovelace: Thanks! Here is the invoice",
    "Alice picks Send to customer on that message",
    'Ada receives: "Alice: Thanks! Here is the invoice for it."',
    'Ada receives the document invoice.pdf (3,038 bytes), captioned "Alice: invoice.pdf"',
    '#sk-ada-lovelace, posted as "Alice": To Ada Lovelace: Thanks! Here is the invoice for it. '
    "/ :paperclip: invoice.pdf",
    "Alice archives #sk-ada-lovelace",
    'Ada Lovelace writes again: "It just arrived',
    "conversation reopened in #sk-ada-lovelace-2",
    "#sk-ada-lovelace-2, posted by skbridge: This conversation continues from #sk-ada-lovelace",
    "#sk-ada-lovelace-2, posted by skbridge: Earlier in this conversation: / > ",
    '#sk-ada-lovelace-2, posted as "Ada Lovelace": It just arrived',
    "#support, posted by skbridge: Ada Lovelace (Telegram) wrote again, reopening the "
    "conversation: #sk-ada-lovelace-2",
]


def test_demo_tells_the_whole_story_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """``python -m skbridge demo`` exits 0, prints each step in order, no log lines, no files."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SKBRIDGE_")} | {
        "TMPDIR": str(tmp_path)
    }
    done = subprocess.run(
        [sys.executable, "-m", "skbridge", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    story = [line for line in lines if line[:2].strip().isdigit()]
    assert len(story) == len(STEPS)
    for number, (line, step) in enumerate(zip(story, STEPS, strict=True), start=1):
        assert line.startswith(f"{number:>2}  ") and step in line, (number, line)
    assert lines[-1].startswith("done in ")
    assert not any(level in done.stdout for level in ("INFO ", "DEBUG ", "WARNING "))
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []
