"""Transform + aggregate over 2^22 x 2 rewards: jit-compiled JAX versus NumPy, in one run.

    python benchmarks/rewards_utility.py [--log2-batch 22] [--repeats 7]

Prints the median wall time of each and the ratio NumPy / JAX (> 1 means JAX is faster).
Compilation is excluded (one warm-up call) and inputs are already on the device. It takes
under a minute on a 2-core CPU with the defaults (54 s on one loaded by other jobs).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from alignment import rewards


def _np_log_sigmoid(d: np.ndarray) -> np.ndarray:
    """log sigmoid(d) = -logaddexp(0, -d), the stable NumPy form."""
    return -np.logaddexp(0.0, -d)


# label -> (transform, aggregator, the same utility in NumPy as fn(r, ref, w)).
CHOICES = {
    "lsc + sum (AND)": ("lsc", "sum", lambda r, ref, w: np.sum(_np_log_sigmoid(r - ref), axis=-1)),
    "centered + lsc_and": ("centered", "lsc_and", lambda r, ref, w: np.sum(_np_log_sigmoid(r - ref), axis=-1)),
    "identity + weighted_sum": ("identity", "weighted_sum", lambda r, ref, w: np.sum(r * w, axis=-1)),
    "centered + softmin": ("centered", "softmin", lambda r, ref, w: -np.logaddexp.reduce(ref - r, axis=-1)),
}


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log2-batch", type=int, default=22)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    n = 2**args.log2_batch
    rng = np.random.default_rng(0)
    r_np = rng.normal(size=(n, 2)).astype(np.float32) * 3
    ref_np = rng.normal(size=(n, 2)).astype(np.float32)
    w_np = np.array([0.4, 0.6], np.float32)
    r, ref, w = jax.device_put((r_np, ref_np, w_np))

    print(f"{n:,} x 2 rewards, float32, {jax.device_count()} {jax.devices()[0].platform} device(s), median of {args.repeats}")
    print(f"{'utility':<26}{'numpy ms':>10}{'jax jit ms':>12}{'numpy/jax':>11}")
    for label, (transform, aggregator, numpy_fn) in CHOICES.items():
        weighted = aggregator == "weighted_sum"
        fn = jax.jit(lambda a, b, c, t=transform, g=aggregator: rewards.utility(a, b, t, g, c))
        args_jax = (r, ref, w if weighted else None)
        args_np = (r_np, ref_np, w_np if weighted else None)
        np.testing.assert_allclose(fn(*args_jax), numpy_fn(*args_np), rtol=1e-4, atol=1e-4)  # also compiles
        t_jax = median_seconds(lambda: fn(*args_jax).block_until_ready(), args.repeats)
        t_np = median_seconds(lambda: numpy_fn(*args_np), args.repeats)
        print(f"{label:<26}{t_np * 1e3:>10.1f}{t_jax * 1e3:>12.1f}{t_np / t_jax:>10.1f}x")


if __name__ == "__main__":
    main()
