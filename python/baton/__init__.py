"""baton's Python API: Metaflow's FlowSpec, one import away.

Change ``from metaflow import ...`` to ``from baton import ...`` and run
``python3 flow.py run``: the flow becomes a baton flow version, run by the
``baton`` binary ($BATON_BIN, else on PATH) in the same home and store as
every other flow. Only the standard library is used, and a task imports
only what it needs (no ast, no subprocess) to keep its start-up cheap.
"""

from .flowspec import (
    FlowSpec,
    JSONType,
    Parameter,
    current,
    step,
)
from .decorators import catch, resources, retry, schedule, timeout, trigger, trigger_on_finish
from .errors import BatonClientError, BatonFlowError, MergeArtifactsException


def __getattr__(name):
    # The client (Flow, Run, ...) is loaded on first use: a task's start-up
    # stays free of subprocess and the CLI.
    if name in _CLIENT:
        from . import client
        return getattr(client, name)
    raise AttributeError("module 'baton' has no attribute %r" % name)


_CLIENT = ("Flow", "Run", "Step", "Task", "DataArtifact", "namespace")

__all__ = [
    "FlowSpec", "step", "Parameter", "JSONType", "current",
    "retry", "timeout", "catch", "resources",
    "trigger", "trigger_on_finish", "schedule",
    "MergeArtifactsException", "BatonFlowError",
    "Flow", "Run", "Step", "Task", "DataArtifact", "namespace", "BatonClientError",
]
