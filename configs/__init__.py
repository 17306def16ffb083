"""Named Fiddle configs: functions returning ``fdl.Config`` / ``fdl.Partial``.

Installed as ``alignment.configs`` (setup.py maps this folder there). The experiment builders
(``EXPERIMENTS``) are what ``launch/train.py --config config:NAME`` runs; ``utilities`` holds
the utilities over several reward models as configs of their own; ``sweeps`` the functions
for ``--config sweep:...``. Each function returns a config; ``fdl.build`` turns it into the
object it describes, and any field can be changed on the config before building::

    import fiddle as fdl
    import jax.numpy as jnp
    from alignment.configs import utilities

    config = utilities.reference()                     # the empirical 85th percentile
    config.quantile = 0.5                              # an override: the median instead
    reference = fdl.build(config)
    print(reference(jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0]])))   # [2.]
"""

from .experiments import cpu_check, paper_regime, paper_sandbox, quickstart, smoke, smollm2_helpful_harmless
from .sweeps import values
from .tpu_pod import tpu_pod_1b, tpu_pod_8b

EXPERIMENTS = ("quickstart", "paper_sandbox", "paper_regime", "smoke", "smollm2_helpful_harmless", "tpu_pod_1b", "tpu_pod_8b")

__all__ = ["EXPERIMENTS", "cpu_check", "paper_regime", "paper_sandbox", "quickstart", "smoke", "smollm2_helpful_harmless", "tpu_pod_1b", "tpu_pod_8b",
           "values"]
