"""Write one named section of BENCHMARKS.md, leaving the other sections as they are.

Each benchmark script owns one section between ``<!-- BEGIN name -->`` and ``<!-- END name -->``
so scripts can be re-run independently and their figures stay side by side in one file.
"""

from __future__ import annotations

import datetime as dt
import platform
import re
from pathlib import Path

from hwnas.latency.safeio import atomic_write_text

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# hwnas benchmarks\n\nEvery figure below was produced by the script named in its section.\n"


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"_Measured {when} on {cpu}, {os.cpu_count()} cores._"


def write_section(name: str, markdown: str, path: Path = BENCHMARKS) -> None:
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- BEGIN {name} -->\n{markdown.strip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->",
                         re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + block + "\n")
    atomic_write_text(path, text)
