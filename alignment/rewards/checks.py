"""Input checks shared by the reward functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def check_finite(x: jax.Array, what: str) -> jax.Array:
    """Returns ``x``; raises ``ValueError`` naming ``what`` if it holds NaN or inf.

    The test runs where ``x`` lives and fetches one boolean (two scalars on failure), so a
    sharded array is never gathered to the host. Traced values (inside ``jit`` or ``vmap``)
    have no concrete value and pass unchecked.
    """
    if not jnp.issubdtype(x.dtype, jnp.floating) and not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(f"{what} must be a real-valued array, got dtype {x.dtype}")
    bad = ~jnp.isfinite(x)
    try:
        if not bool(jnp.any(bad)):
            return x
    except jax.errors.ConcretizationTypeError:
        return x
    count, first = jax.device_get((jnp.count_nonzero(bad), jnp.argmax(bad.reshape(-1))))
    index = tuple(int(i) for i in np.unravel_index(int(first), x.shape))
    raise ValueError(f"{what} has {int(count)} non-finite values (NaN or inf); the first at index {index}")
