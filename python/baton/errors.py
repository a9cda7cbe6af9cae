"""Errors a user sees, kept apart so a task imports nothing heavy."""


class BatonFlowError(Exception):
    """A malformed flow or parameter: `run`, `resume` and `show` exit 2.

    The message names the step (or parameter), as Metaflow's lint does."""

    def __init__(self, msg, step=None, lineno=None):
        super().__init__(msg)
        self.step = step
        self.lineno = lineno


class MergeArtifactsException(Exception):
    """merge_artifacts found inputs that disagree on an artifact."""

    def __init__(self, msg, names):
        super().__init__(msg)
        self.artifact_names = names


class BatonClientError(Exception):
    """The client could not read a run back: no binary, or the binary
    found no such run, flow, step or artifact (its message is kept)."""
