"""Where the suite's time goes, by file, from a profiled run (``tests/conftest.py``):

    ALIGNMENT_TEST_PROFILE=/tmp/profile python -m pytest -q -n auto --dist loadfile tests
    python tests/profile_report.py /tmp/profile

prints each file's seconds (setup, call and teardown of its tests, summed over workers) and the
part of them JAX spent tracing, lowering and compiling (or reading the persistent cache),
longest first, then the totals.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path


def main(directory: str) -> None:
    files = defaultdict(lambda: [0.0, 0.0, 0])
    for path in sorted(Path(directory).glob("*.json")):
        for nodeid, test in json.loads(path.read_text()).items():
            entry = files[nodeid.split("::")[0]]
            entry[0] += test["seconds"]
            entry[1] += test["compile"]
            entry[2] += 1
    print(f"{'file':<52} {'tests':>5} {'seconds':>8} {'compiling':>9}")
    for name, (seconds, compiling, count) in sorted(files.items(), key=lambda kv: -kv[1][0]):
        print(f"{name:<52} {count:>5} {seconds:>8.1f} {compiling:>8.1f}s")
    seconds, compiling = (sum(v[i] for v in files.values()) for i in (0, 1))
    print(f"{'all':<52} {sum(v[2] for v in files.values()):>5} {seconds:>8.1f} {compiling:>8.1f}s ({compiling / seconds:.0%})")


if __name__ == "__main__":
    main(sys.argv[1])
