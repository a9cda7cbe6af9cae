"""One task: the flow's step in one Python process.

Upstream artifacts are files <attr>.pkl in BATON_INPUT_DIR, unpickled on
first access; what the step sets (or reads, since it may have changed it in
place) is pickled to BATON_OUTPUT_DIR, streamed to the file. Artifacts the
step never touched are passed on as links to their input files, so a
chain of steps carries every artifact down without unpickling it.
"""

import json
import os
import pickle
import sys

from .errors import MergeArtifactsException
from .flowspec import RESERVED, Parameter

PROTOCOL = pickle.HIGHEST_PROTOCOL
STACK = "_foreach_stack.pkl"
FOREACH = "_foreach.json"


def _scan(d):
    """{attr: path} of the artifacts in folder d."""
    out = {}
    try:
        it = os.scandir(d)
    except FileNotFoundError:
        return out
    with it:
        for e in it:
            n = e.name
            if n.endswith(".pkl") and not n.startswith("_") and e.is_file():
                out[n[:-4]] = e.path
    return out


def _load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def _load_stack(d):
    p = os.path.join(d, STACK)
    return _load(p) if os.path.exists(p) else []


class Input(object):
    """One input of a join: its artifacts as attributes, loaded lazily."""

    def __init__(self, step, folder):
        self.__dict__["_step"] = step
        self.__dict__["_dir"] = folder
        self.__dict__["_lazy"] = _scan(folder)
        self.__dict__["_stack"] = None

    @property
    def foreach_stack_frames(self):
        if self._stack is None:
            self.__dict__["_stack"] = _load_stack(self._dir)
        return self._stack

    @property
    def index(self):
        s = self.foreach_stack_frames
        return s[-1]["index"] if s else None

    @property
    def input(self):
        s = self.foreach_stack_frames
        if not s:
            raise AttributeError("input")
        return s[-1]["value"]

    def __getattr__(self, name):
        p = self.__dict__["_lazy"].get(name)
        if p is None:
            raise AttributeError("input %s has no artifact '%s'" % (self._step, name))
        v = _load(p)
        self.__dict__[name] = v
        return v

    def __repr__(self):
        return "<input %s>" % self._step


class Inputs(object):
    """A join's inputs: iterable, indexable and, for a static join, by step name."""

    def __init__(self, items):
        self._items = items
        for i in items:
            if not i._step.isdigit():
                setattr(self, i._step, i)

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]


class TaskState(object):
    def __init__(self, flow, step, join_kind):
        self.flow = flow
        self.step = step
        self.join_kind = join_kind
        self.lazy = {}
        self.foreach_stack = []
        self.next = None
        self.params = set()

    def record_next(self, targets, foreach, condition):
        self.next = (targets, foreach, condition)

    def load(self, name):
        p = self.lazy.get(name)
        if p is None:
            return False, None
        return True, _load(p)

    def forget(self, name):
        self.lazy.pop(name, None)

    def foreach_value(self):
        f = self.foreach_stack[-1]
        if "value" not in f:
            f["value"] = _load(f["from"])[f["index"]]
            del f["from"]
        return f["value"]

    def merge_artifacts(self, flow, inputs, exclude, include):
        import hashlib

        if self.join_kind is None:
            raise MergeArtifactsException("merge_artifacts can only be called in a join step (step *%s* is not one)." % self.step, [])
        names = {}
        for inp in inputs:
            for n, p in inp._lazy.items():
                names.setdefault(n, []).append(p)
        if include:
            missing = [n for n in include if n not in names]
            if missing:
                raise MergeArtifactsException("Step *%s*: merge_artifacts was asked to include %s, which no input has." % (self.step, ", ".join(missing)), missing)
            wanted = list(include)
        else:
            wanted = [n for n in names if n not in exclude]
        conflicts = []
        take = {}
        for n in sorted(wanted):
            if n in flow.__dict__ or n in self.params or n in RESERVED:
                continue  # set in this step: the step's value wins
            digests = set()
            for p in names[n]:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                digests.add(h.digest())
            if len(digests) > 1:
                conflicts.append(n)
            else:
                take[n] = names[n][0]
        if conflicts:
            raise MergeArtifactsException(
                "Step *%s* cannot merge the following artifacts due to them having conflicting values:\n[%s].\n"
                "To remedy this issue, be sure to explicitly set those artifacts (using self.<artifact_name> = ...) "
                "prior to calling merge_artifacts." % (self.step, ", ".join(conflicts)), conflicts)
        self.lazy.update(take)


def _params(cls):
    seen = {}
    for klass in reversed(cls.__mro__):
        for k, v in vars(klass).items():
            if isinstance(v, Parameter):
                seen[k] = v
    return seen


def _param_value(p):
    n = p.baton_name.upper()
    text = os.environ.get("BATON_PARAM_" + n)
    if text is None:
        path = os.environ.get("BATON_PARAM_FILE_" + n)
        if path is None:
            return p.default
        with open(path) as f:
            text = f.read()
    return p.parse(text)


def _write(out, name, value):
    # pickle.dump streams into the file: a large value is not held twice.
    with open(os.path.join(out, name), "wb") as f:
        pickle.dump(value, f, protocol=PROTOCOL)


def _pass_on(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)


def _opts(argv):
    o = {"join": None, "foreach": None, "loop_from": None, "parents": []}
    i = 0
    while i < len(argv):
        a = argv[i]
        v = argv[i + 1] if i + 1 < len(argv) else None
        if a == "--join":
            o["join"] = v
        elif a == "--foreach":
            o["foreach"] = v
        elif a == "--loop-from":
            o["loop_from"] = v
        elif a == "--parents":
            o["parents"] = v.split(",") if v else []
        else:
            raise SystemExit("baton task: unknown option %s" % a)
        i += 2
    return o


def run_task(flow, argv):
    """Run step argv[0] of flow; the exit code of the task."""
    if not argv:
        print("baton task: which step?", file=sys.stderr)
        return 2
    step_name = argv[0]
    o = _opts(argv[1:])
    cls = type(flow)
    func = getattr(cls, step_name, None)
    if func is None or not getattr(func, "is_step", False):
        print("baton task: flow %s has no step %s" % (cls.__name__, step_name), file=sys.stderr)
        return 2
    st = TaskState(flow, step_name, o["join"])
    flow.__dict__["_baton"] = st
    for attr, p in _params(cls).items():
        flow.__dict__[attr] = _param_value(p)
        st.params.add(attr)

    in_dir = os.environ.get("BATON_INPUT_DIR", "")
    out_dir = os.environ["BATON_OUTPUT_DIR"]
    inputs = None
    if o["join"] == "foreach":
        parent = os.path.join(in_dir, o["parents"][0])
        idx = sorted((int(n) for n in os.listdir(parent) if n.isdigit()))
        inputs = Inputs([Input(str(i), os.path.join(parent, str(i))) for i in idx])
        st.foreach_stack = list(inputs[0].foreach_stack_frames[:-1]) if len(inputs) else []
    elif o["join"] == "static":
        items = [Input(p, os.path.join(in_dir, p)) for p in o["parents"] if os.path.isdir(os.path.join(in_dir, p))]
        inputs = Inputs(items)
        st.foreach_stack = list(items[0].foreach_stack_frames) if items else []
    else:
        src = None
        dirs = []
        if in_dir and os.path.isdir(in_dir):
            dirs = sorted(e.name for e in os.scandir(in_dir) if e.is_dir())
        it = int(os.environ.get("BATON_ITERATION", "1") or 1)
        if o["loop_from"] and it > 1 and o["loop_from"] in dirs:
            src = o["loop_from"]
        else:
            order = [p for p in o["parents"] if p in dirs] or dirs
            if order:
                src = order[0]
        if src is not None:
            d = os.path.join(in_dir, src)
            st.lazy = _scan(d)
            st.foreach_stack = _load_stack(d)
            if o["foreach"]:
                with open(os.path.join(d, FOREACH)) as f:
                    n = len(json.load(f))
                var = o["foreach"]
                frame = {"step": src, "var": var, "index": int(os.environ["BATON_FOREACH_INDEX"]), "num_splits": n}
                if var in st.lazy:
                    frame["from"] = st.lazy[var]
                st.foreach_stack = st.foreach_stack + [frame]

    decos = getattr(func, "_baton_decos", {})
    catch = decos.get("catch")
    retry = decos.get("retry")
    attempts = (int(retry["times"]) + 1) if retry else 1
    attempt = int(os.environ.get("BATON_ATTEMPT", "1") or 1)
    try:
        if inputs is not None:
            func(flow, inputs)
        else:
            func(flow)
    except Exception as e:
        if catch is None or attempt < attempts:
            raise
        import traceback

        tb = traceback.format_exc()
        if catch.get("print_exception", True):
            sys.stderr.write(tb)
            sys.stderr.write("@catch: step %s failed; the run goes on%s\n" % (
                step_name, (" with the exception in self.%s" % catch["var"]) if catch.get("var") else ""))
        if catch.get("var"):
            from .decorators import CaughtException

            flow.__dict__[catch["var"]] = CaughtException(e, tb)
    else:
        if catch is not None and catch.get("var"):
            flow.__dict__[catch["var"]] = None

    # The transition: what baton needs to fan out or choose a case.
    if st.next is not None:
        _, foreach, condition = st.next
        if foreach:
            items = getattr(flow, foreach)
            if not isinstance(items, (list, tuple)):
                items = list(items)
                flow.__dict__[foreach] = items
            if len(items) == 0:
                print("Foreach iterator over *%s* in step *%s* produced zero splits." % (foreach, step_name), file=sys.stderr)
                return 1
            with open(os.path.join(out_dir, FOREACH), "w") as f:
                json.dump(list(range(len(items))), f)
        if condition:
            v = getattr(flow, condition)
            with open(os.path.join(out_dir, "case"), "w") as f:
                f.write(str(v))

    # Artifacts: what the step set or read, pickled; the rest passed on.
    written = set()
    for name, value in list(flow.__dict__.items()):
        if name.startswith("_") or name in st.params or name in RESERVED:
            continue
        _write(out_dir, name + ".pkl", value)
        written.add(name)
    for name, path in st.lazy.items():
        if name not in written:
            _pass_on(path, os.path.join(out_dir, name + ".pkl"))
    if st.foreach_stack:
        for i in range(len(st.foreach_stack)):
            if "from" in st.foreach_stack[i]:
                f = st.foreach_stack[i]
                f["value"] = _load(f.pop("from"))[f["index"]]
        _write(out_dir, STACK, st.foreach_stack)
    return 0
