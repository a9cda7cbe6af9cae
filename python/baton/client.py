"""Read runs back, the way Metaflow's client does: Flow, Run, Step, Task.

Everything is read through the baton binary's JSON outputs ($BATON_BIN,
else baton on PATH, in $BATON_HOME / $BATON_DB as the binary itself reads
them), so the client sees the same home and store as `baton runs` and
works for Python and YAML flows alike. Read-only: nothing here changes a
run. Artifacts are fetched and unpickled only when first read.
"""

import json
import os
import pickle
import shutil
import subprocess

from .cli import baton_flow_name
from .errors import BatonClientError


def namespace(ns):
    """Accepted for Metaflow compatibility: baton has no namespaces."""
    return None


def _bin():
    b = os.environ.get("BATON_BIN") or shutil.which("baton")
    if not b:
        raise BatonClientError("cannot find the baton binary: set BATON_BIN or put baton on PATH")
    return b


def _baton(args, binary=False):
    p = subprocess.run([_bin()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        msg = p.stderr.decode("utf-8", "replace").strip()
        raise BatonClientError("baton %s: %s" % (" ".join(args), msg or "exit %d" % p.returncode))
    return p.stdout if binary else p.stdout.decode("utf-8")


def _json(args):
    return json.loads(_baton(args + ["-o", "json"]) or "null")


def _decode(name, raw):
    """A .pkl artifact is unpickled, a .json one parsed, any other is bytes."""
    if name.endswith(".pkl"):
        return pickle.loads(raw)
    if name.endswith(".json"):
        return json.loads(raw.decode("utf-8"))
    return raw


class DataArtifact(object):
    """One artifact of a task; .data is its value, read on first use."""

    def __init__(self, path, name):
        self.path = path      # RUN/STEP[/INDEX...]/FILE
        self.filename = name  # total.pkl, model.json, ...
        self.id = name[:-4] if name.endswith(".pkl") else name
        self._loaded = False
        self._value = None

    @property
    def data(self):
        if not self._loaded:
            self._value = _decode(self.filename, _baton(["artifact", "get", self.path], binary=True))
            self._loaded = True
        return self._value

    def __repr__(self):
        return "DataArtifact('%s')" % self.path


class MetaflowData(object):
    """The artifacts of a task as attributes (data.total) or items
    (data["model.json"], for YAML flow files whose names are not attributes)."""

    def __init__(self, artifacts):
        self._artifacts = artifacts  # {name: DataArtifact}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError("no artifact '%s' (artifacts: %s)" % (name, ", ".join(sorted(self._artifacts)) or "none"))

    def __getitem__(self, name):
        a = self._artifacts.get(name)
        if a is None:
            # A YAML flow's greetings.txt reads as data.greetings too, when
            # only one file has that stem.
            hits = [v for k, v in self._artifacts.items() if k.rsplit(".", 1)[0] == name]
            if len(hits) != 1:
                raise KeyError(name)
            a = hits[0]
        return a.data

    def __contains__(self, name):
        return name in self._artifacts

    def __iter__(self):
        return iter(sorted(self._artifacts))

    def __dir__(self):
        return sorted(self._artifacts)

    def __repr__(self):
        return "<MetaflowData: %s>" % ", ".join(sorted(self._artifacts))


def _artifacts(listing):
    """{name: DataArtifact} from `baton artifact ls -o json` rows; internal
    files (_foreach_stack.pkl, _foreach.json) are left out."""
    out = {}
    for row in listing or []:
        name = row["name"]
        if name.startswith("_") or "/" in name:
            continue
        a = DataArtifact(row["path"], name)
        out[a.id] = a
    return out


class Task(object):
    def __init__(self, run, step, index, info=None):
        self.run = run
        self.step_name = step
        self.index = index          # "0", or "1/1" in nested foreaches
        self._info = info or {}
        self._arts = None
        self._logs = None

    @property
    def pathspec(self):
        return "%s/%s/%s" % (self.run.pathspec, self.step_name, self.index)

    @property
    def id(self):
        return self.index

    @property
    def _addr(self):
        return "%s/%s/%s" % (self.run.id, self.step_name, self.index)

    @property
    def successful(self):
        return self._info.get("status") == "succeeded"

    @property
    def finished(self):
        return self._info.get("status") in ("succeeded", "failed", "cancelled", "skipped")

    def _artifact_map(self):
        if self._arts is None:
            rows = _json(["artifact", "ls", self._addr])
            # artifact ls RUN/STEP/0 also lists deeper indexes (0/1): keep ours.
            self._arts = _artifacts([r for r in rows or [] if r.get("task") == self._addr])
        return self._arts

    @property
    def data(self):
        return MetaflowData(self._artifact_map())

    @property
    def artifacts(self):
        return [self._artifact_map()[k] for k in sorted(self._artifact_map())]

    def __getitem__(self, name):
        try:
            return self._artifact_map()[name]
        except KeyError:
            raise KeyError("task %s has no artifact '%s'" % (self.pathspec, name))

    def __contains__(self, name):
        return name in self._artifact_map()

    def _log(self, which):
        if self._logs is None:
            self._logs = _json(["logs", self._addr]) or []
        # The last attempt is the one that counts, as in Metaflow.
        return self._logs[-1].get(which, "") if self._logs else ""

    @property
    def stdout(self):
        return self._log("stdout")

    @property
    def stderr(self):
        return self._log("stderr")

    def __repr__(self):
        return "Task('%s')" % self.pathspec


def _index(i):
    if isinstance(i, (list, tuple)):
        return "/".join(str(x) for x in i)
    return str(i)


class Step(object):
    def __init__(self, run, info):
        self.run = run
        self._info = info
        self.id = info["name"]

    @property
    def pathspec(self):
        return "%s/%s" % (self.run.pathspec, self.id)

    def _task_infos(self):
        infos = list(self._info.get("tasks") or [])
        truncated = self._info.get("tasks_truncated")
        # show -o json lists up to 1000 tasks a step: page through the rest.
        while truncated:
            page = _json(["show", str(self.run.id), "--step", self.id, "--tasks",
                          "--limit", "1000", "--offset", str(len(infos))])
            st = [s for s in page.get("steps") or [] if s.get("name") == self.id]
            if not st or not st[0].get("tasks"):
                break
            infos += st[0]["tasks"]
            truncated = st[0].get("tasks_truncated")
        return infos

    def tasks(self):
        return [Task(self.run, self.id, _index(t.get("index", 0)), t) for t in self._task_infos()]

    def __iter__(self):
        return iter(self.tasks())

    @property
    def task(self):
        ts = self.tasks()
        if not ts:
            raise BatonClientError("step %s has no task" % self.pathspec)
        return ts[0]

    @property
    def successful(self):
        return self._info.get("status") == "succeeded"

    def __repr__(self):
        return "Step('%s')" % self.pathspec


class Run(object):
    """Run("Squares/12") or Run("12"): a run, read through `baton show`."""

    def __init__(self, pathspec, _flow_label=None, _info=None):
        flow, _, rid = str(pathspec).rpartition("/")
        self.id = rid
        self._label = _flow_label or flow or None
        self._show = None
        self._info = _info
        if _info is None:
            self._load()
            if flow and baton_flow_name(flow) != self._show["flow"] and flow != self._show["flow"]:
                raise BatonClientError("run %s belongs to flow %s, not %s" % (rid, self._show["flow"], flow))

    def _load(self):
        if self._show is None:
            self._show = _json(["show", self.id])
            self._info = self._show
        return self._show

    @property
    def flow_name(self):
        return self._label or self._info["flow"]

    @property
    def pathspec(self):
        return "%s/%s" % (self.flow_name, self.id)

    @property
    def status(self):
        return self._load()["status"]

    @property
    def successful(self):
        return self.status == "succeeded"

    @property
    def finished(self):
        return self.status in ("succeeded", "failed", "cancelled")

    @property
    def created_at(self):
        return self._info.get("created_at")

    @property
    def finished_at(self):
        return self._load().get("finished_at")

    @property
    def parameters(self):
        return dict(self._info.get("params") or {})

    @property
    def tags(self):
        return list(self._info.get("tags") or [])

    def steps(self):
        return [Step(self, s) for s in self._load().get("steps") or []]

    def __iter__(self):
        return iter(self.steps())

    def __getitem__(self, name):
        for s in self.steps():
            if s.id == name:
                return s
        raise KeyError("run %s has no step '%s'" % (self.pathspec, name))

    def __contains__(self, name):
        return any(s.id == name for s in self.steps())

    @property
    def end_task(self):
        if "end" in self:
            return self["end"].task
        steps = self.steps()  # a YAML flow: its last step
        return steps[-1].task if steps else None

    @property
    def data(self):
        t = self.end_task
        return t.data if t is not None else None

    def __repr__(self):
        return "Run('%s')" % self.pathspec


class Flow(object):
    """Flow("Squares"): the Python class name, or the baton flow name."""

    def __init__(self, name):
        self.name = name
        self.id = name
        self.baton_name = baton_flow_name(name)

    def _runs(self, status=None, limit=None):
        args = ["runs", "--flow", self.baton_name]
        if status:
            args += ["--status", status]
        if limit:
            args += ["--limit", str(limit)]
        rows = _json(args) or []
        if not rows and self.baton_name != self.name:
            # A YAML flow named with capitals or dots is taken as written.
            rows = _json(args[:2] + [self.name] + args[3:]) or []
        return [Run(str(r["id"]), _flow_label=self.name, _info=r) for r in rows]

    def runs(self):
        """The flow's runs, newest first (at most the binary's default limit, 50)."""
        return self._runs()

    def __iter__(self):
        return iter(self._runs())

    @property
    def latest_run(self):
        rs = self._runs(limit=1)
        return rs[0] if rs else None

    @property
    def latest_successful_run(self):
        rs = self._runs(status="succeeded", limit=1)
        return rs[0] if rs else None

    def __getitem__(self, run_id):
        return Run("%s/%s" % (self.name, run_id))

    def __repr__(self):
        return "Flow('%s')" % self.name
