"""One sampling draw over a vocabulary: ``jax.random.categorical`` versus ``alignment.sampling.categorical``.

    python benchmarks/categorical_draw.py [--rows 32] [--vocab 49152] [--repeats 20]

Both are jit-compiled and draw from the same ``[rows, vocab]`` float32 logits with the same key;
the script checks that they return the same tokens, then prints each one's median milliseconds
and the ratio. The defaults are one decode step of ``benchmarks/rl_step_smollm2.py`` (8 prompts
x 4 samples, SmolLM2's vocabulary). It takes under ten seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from alignment.sampling import categorical


def median_ms(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    logits = jax.numpy.asarray(np.random.default_rng(0).standard_normal((args.rows, args.vocab), dtype=np.float32))
    key = jax.random.key(0)
    theirs = jax.jit(lambda k, x: jax.random.categorical(k, x, axis=-1))
    ours = jax.jit(categorical)
    if not (np.asarray(theirs(key, logits)) == np.asarray(ours(key, logits))).all():
        raise AssertionError("alignment.sampling.categorical drew other tokens than jax.random.categorical")
    a, b = median_ms(theirs, key, logits, repeats=args.repeats), median_ms(ours, key, logits, repeats=args.repeats)
    print(f"[{args.rows}, {args.vocab}] float32 on {jax.devices()[0].platform}: jax.random.categorical {a:.2f} ms, "
          f"alignment.sampling.categorical {b:.2f} ms (same tokens); ratio {a / b:.2f}x")


if __name__ == "__main__":
    main()
