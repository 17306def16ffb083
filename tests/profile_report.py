"""Where the suite's time goes, by file, from a profiled run (``tests/conftest.py``):

    ALIGNMENT_TEST_PROFILE=/tmp/profile python -m pytest -q -n auto --dist loadfile tests
    python tests/profile_report.py /tmp/profile

prints each file's seconds (setup, call and teardown of its tests, summed over workers) and the
seconds JAX spent in them tracing, lowering to MLIR and compiling or reading the persistent cache
(in the test processes, not in the subprocesses some tests start; a trace nested in another is
counted in both), longest first, then the totals.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

def main(directory: str) -> None:
    tests = [test for path in sorted(Path(directory).glob("*.json")) for test in json.loads(path.read_text()).items()]
    parts = list(tests[0][1]) if tests else []  # "seconds", then the stages of compilation
    files = defaultdict(lambda: dict.fromkeys(("tests", *parts), 0.0))
    for nodeid, test in tests:
        entry = files[nodeid.split("::")[0]]
        entry["tests"] += 1
        for part in parts:
            entry[part] += test[part]
    files["all"] = {key: sum(entry[key] for entry in files.values()) for key in ("tests", *parts)}
    print(f"{'file':<48} {'tests':>5}" + "".join(f"{part:>9}" for part in parts))
    for name, entry in sorted(files.items(), key=lambda kv: (kv[0] == "all", -kv[1]["seconds"])):
        print(f"{name:<48} {entry['tests']:>5.0f}" + "".join(f"{entry[part]:>9.1f}" for part in parts))


if __name__ == "__main__":
    main(sys.argv[1])
