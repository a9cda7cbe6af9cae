"""FlowSpec, @step, Parameter and current: what a flow file imports.

This module is on every task's import path, so it imports only os, sys
and json; the graph (ast) and the command line (subprocess) load only
for `run`, `resume` and `show`.
"""

import json
import os
import sys

from .errors import BatonFlowError, MergeArtifactsException

# Names a flow may not use as artifacts: FlowSpec's own API.
RESERVED = frozenset(["next", "input", "index", "foreach_stack", "merge_artifacts", "name", "script_name"])


def step(f):
    """Mark a method as a step of the flow."""
    f.is_step = True
    if not hasattr(f, "_baton_decos"):
        f._baton_decos = {}
    return f


class JSONType(object):
    """Parameter type: the value is JSON text, the attribute its parsed value."""

    name = "JSON"


class Parameter(object):
    """A run parameter, readable as an attribute in every step.

    ``type`` is str, int, float, bool or JSONType; without one it is taken
    from the default (str when there is none). A parameter without a
    default, or with required=True, must be given."""

    def __init__(self, name, default=None, type=None, help=None, required=False, **kwargs):
        self.name = name
        self.default = default
        self.help = help
        self.required = required
        if type is None:
            if isinstance(default, bool):
                type = bool
            elif isinstance(default, int):
                type = int
            elif isinstance(default, float):
                type = float
            elif isinstance(default, (dict, list)):
                type = JSONType
            else:
                type = str
        self.type = type

    @property
    def baton_name(self):
        return self.name.replace("-", "_").lower()

    @property
    def baton_type(self):
        return {str: "string", int: "int", float: "float", bool: "bool", JSONType: "json"}.get(self.type)

    def parse(self, text):
        """The value a task gets from its $BATON_PARAM_ text."""
        if self.type is str:
            return text
        v = json.loads(text)
        if self.type is float:
            return float(v)
        return v


def _env(name, default=None):
    return os.environ.get(name, default)


class _Current(object):
    """Where the running task is, from the BATON_* environment."""

    @property
    def flow_name(self):
        return self._flow_name if hasattr(self, "_flow_name") else None

    @property
    def run_id(self):
        return _env("BATON_RUN_ID")

    @property
    def step_name(self):
        return _env("BATON_STEP")

    @property
    def task_id(self):
        # BATON_TASK_ID is RUN/STEP/INDEX (RUN/STEP/I/J nested): Metaflow's
        # task id is the part after the step.
        t = _env("BATON_TASK_ID")
        if t is None:
            return None
        parts = t.split("/", 2)
        return parts[2] if len(parts) == 3 else t

    @property
    def retry_count(self):
        a = _env("BATON_ATTEMPT")
        return int(a) - 1 if a else 0

    @property
    def origin_run_id(self):
        return _env("PYBATON_ORIGIN_RUN_ID") or None

    @property
    def iteration(self):
        i = _env("BATON_ITERATION")
        return int(i) if i else None

    @property
    def pathspec(self):
        if self.run_id is None:
            return None
        return "%s/%s/%s/%s" % (self.flow_name, self.run_id, self.step_name, self.task_id)

    @property
    def is_running_flow(self):
        return self.run_id is not None


current = _Current()


class FlowSpec(object):
    """Base class of a flow. Instantiating it runs the command line:
    ``run``, ``resume``, ``show`` (and, inside baton, one task)."""

    def __init__(self, use_cli=True):
        self.__dict__["_baton"] = None
        if not use_cli:
            return
        current._flow_name = type(self).__name__
        argv = sys.argv[1:]
        if argv and argv[0] == "__baton_task":
            from .task import run_task

            sys.exit(run_task(self, argv[1:]))
        from .cli import main

        sys.exit(main(type(self), sys.argv[0], argv))

    # --- what a step calls -------------------------------------------------

    def next(self, *targets, **kwargs):
        """The transition out of this step. The graph comes from the source
        (ast); at run time this records what the task must tell baton: the
        foreach items or the switch's case."""
        foreach = kwargs.pop("foreach", None)
        condition = kwargs.pop("condition", None)
        if kwargs:
            raise BatonFlowError("self.next() got unsupported arguments: %s" % ", ".join(sorted(kwargs)))
        st = self.__dict__.get("_baton")
        if st is not None:
            st.record_next(targets, foreach, condition)

    @property
    def input(self):
        st = self.__dict__.get("_baton")
        if st is None or not st.foreach_stack:
            raise AttributeError("self.input is only set in a step inside a foreach")
        return st.foreach_value()

    @property
    def index(self):
        st = self.__dict__.get("_baton")
        if st is None or not st.foreach_stack:
            return None
        return st.foreach_stack[-1]["index"]

    def foreach_stack(self):
        """[(index, num_splits, value)] from the outermost foreach in."""
        st = self.__dict__.get("_baton")
        if st is None:
            return []
        return [(f["index"], f["num_splits"], f.get("value")) for f in st.foreach_stack]

    def merge_artifacts(self, inputs, exclude=None, include=None):
        st = self.__dict__.get("_baton")
        if st is None:
            raise BatonFlowError("merge_artifacts can only be called inside a running task")
        st.merge_artifacts(self, inputs, exclude or [], include or [])

    # --- lazy artifacts ------------------------------------------------------

    def __getattr__(self, name):
        # Only called when normal lookup fails: an artifact not loaded yet.
        st = self.__dict__.get("_baton")
        if st is not None and not name.startswith("__"):
            found, value = st.load(name)
            if found:
                self.__dict__[name] = value
                return value
        raise AttributeError("Flow %s has no attribute '%s'" % (type(self).__name__, name))

    def __delattr__(self, name):
        st = self.__dict__.get("_baton")
        if st is not None:
            st.forget(name)
        if name in self.__dict__:
            del self.__dict__[name]
        elif st is None:
            raise AttributeError(name)


__all__ = ["FlowSpec", "step", "Parameter", "JSONType", "current", "BatonFlowError", "MergeArtifactsException"]
