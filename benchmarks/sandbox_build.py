"""How long the gold-reward sandbox takes to build, and to load from its cache.

    python benchmarks/sandbox_build.py [--cache-dir DIR]

Builds the default sandbox (``alignment.sandbox.load_sandbox()``: tokenizer, SFT of the tiny base
policy) into a fresh cache directory (a temporary one unless ``--cache-dir`` names an empty
folder), then loads it again from the cache, and prints the seconds of each and the SFT's own
time from the build log. It takes about one to three minutes on a 2-core CPU, almost all of it
the build.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from alignment import sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=None, help="an empty folder (default: a temporary one)")
    args = parser.parse_args()
    if args.cache_dir is not None and args.cache_dir.exists() and any(args.cache_dir.iterdir()):
        parser.error(f"--cache-dir {args.cache_dir} is not empty, so the first load could be a cache hit")
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="sandbox-benchmark-"))

    start = time.perf_counter()
    box = sandbox.load_sandbox(cache_dir=cache_dir)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    sandbox.load_sandbox(cache_dir=cache_dir)
    hit_s = time.perf_counter() - start
    print(f"build (miss): {build_s:7.1f} s   of which SFT: {box.train_log['seconds']:.1f} s, final loss {box.train_log['final_loss']:.3f}")
    print(f"cache hit   : {hit_s:7.1f} s   ({box.directory})")


if __name__ == "__main__":
    main()
