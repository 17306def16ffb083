"""Fiddle experiment definitions: functions returning ``fdl.Config`` / ``fdl.Partial``.

Select one on the command line with ``--config config:NAME`` and override any field with
``--config set:path.to.field=value``; sweeps over names are ablations.
"""
