"""Named Fiddle experiment definitions: functions returning ``fdl.Config`` / ``fdl.Partial``.

``configs/`` is run from a checkout of the repository (setup.py does not install it). Each
function returns a config; ``fdl.build`` turns it into the object it describes, and any field
can be changed on the config before building. No command-line entry point reads these configs
yet. For example::

    import fiddle as fdl
    import jax.numpy as jnp
    from configs import utilities

    config = utilities.reference()                     # the empirical 85th percentile
    config.quantile = 0.5                              # an override: the median instead
    reference = fdl.build(config)
    print(reference(jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0]])))   # [2.]
"""
