"""python3 flow.py run|resume|show|export: the flow as a baton flow version,
run by the baton binary on the same home and store as every other flow."""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

from .errors import BatonFlowError
from .flowspec import JSONType, Parameter
from .graph import FlowGraph

# A loop (a switch leading back) must say how often it may go round;
# Metaflow has no such bound, so every loop gets this one.
MAX_ITERATIONS = 1000

USAGE = """usage: python3 %(script)s [--home DIR] [--db DSN] COMMAND [OPTIONS]

commands:
  run [--PARAM VALUE]... [--workers N] [--tag T] [--no-progress]
                          register the flow as a baton flow version and run it
  resume [STEP] [--origin-run-id ID] [--workers N] [--no-progress]
                          run again what did not succeed in the origin run
                          (default: the latest run); STEP and after run again
  show                    the graph, step by step
  export                  print the baton flow (JSON) that run registers
"""


def baton_flow_name(cls_name):
    """HelloFlow -> hello_flow: baton flow names are lowercase."""
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", cls_name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^a-z0-9_-]", "_", s.lower()).lstrip("_-") or "flow"


def params_of(cls):
    seen = {}
    for klass in reversed(cls.__mro__):
        for k, v in vars(klass).items():
            if isinstance(v, Parameter):
                seen[k] = v
    return seen


def _duration(seconds):
    return "%ds" % int(seconds)


def _step_options(node):
    s = {}
    d = node.decos
    if "retry" in d:
        times = int(d["retry"]["times"])
        wait = _duration(float(d["retry"]["minutes_between_retries"]) * 60)
        if times < 0 or times > 99:
            raise BatonFlowError("Step *%s*: @retry(times=%d): times must be 0 to 99." % (node.name, times), step=node.name)
        # Metaflow waits the same time before every retry: cap the backoff at it.
        s["retry"] = {"attempts": times + 1, "backoff": wait, "max_backoff": wait}
    if "timeout" in d:
        t = d["timeout"]
        secs = int(t["seconds"] or 0) + 60 * int(t["minutes"] or 0) + 3600 * int(t["hours"] or 0)
        if secs <= 0:
            raise BatonFlowError("Step *%s*: @timeout needs seconds=, minutes= or hours=." % node.name, step=node.name)
        s["timeout"] = _duration(secs)
    if "resources" in d:
        r = d["resources"]
        res = {}
        if r.get("cpu") is not None:
            res["cpu"] = r["cpu"]
        if r.get("memory") is not None:
            res["memory"] = "%dMi" % int(r["memory"])  # Metaflow: megabytes
        if r.get("gpu") is not None:
            res["gpu"] = int(r["gpu"])
        if res:
            s["resources"] = res
    return s


def _triggers(cls):
    out = []
    for kind, a in getattr(cls, "_baton_flow_decos", []):
        if kind == "trigger":
            evs = []
            if a.get("event"):
                evs.append(a["event"])
            evs.extend(a.get("events") or [])
            if not evs:
                raise BatonFlowError("@trigger needs event= or events=.")
            for ev in evs:
                if isinstance(ev, dict):
                    t = {"signal": ev["name"]}
                    if ev.get("parameters"):
                        ps = ev["parameters"]
                        if isinstance(ps, (list, tuple)):
                            ps = {p: p for p in ps}
                        t["params"] = {k: "params." + v for k, v in ps.items()}
                    out.append(t)
                else:
                    out.append({"signal": ev})
        elif kind == "trigger_on_finish":
            flows = ([a["flow"]] if a.get("flow") else []) + list(a.get("flows") or [])
            if not flows:
                raise BatonFlowError("@trigger_on_finish needs flow= or flows=.")
            for f in flows:
                out.append({"on_finish": {"flow": baton_flow_name(f)}})
        elif kind == "schedule":
            if a.get("cron"):
                t = {"cron": a["cron"]}
            elif a.get("hourly"):
                t = {"cron": "@hourly"}
            elif a.get("daily"):
                t = {"cron": "@daily"}
            elif a.get("weekly"):
                t = {"cron": "@weekly"}
            else:
                raise BatonFlowError("@schedule needs cron=, hourly=, daily= or weekly=.")
            if a.get("timezone"):
                t["timezone"] = a["timezone"]
            out.append(t)
    return out


def generate(cls, graph, script, cwd, python=None):
    """The baton flow (a dict, written as JSON) for the flow class."""
    python = python or sys.executable
    with open(script, "rb") as f:
        code = hashlib.sha256(f.read()).hexdigest()
    doc = {
        "name": baton_flow_name(cls.__name__),
        # The code's digest makes a changed flow file a new version.
        "description": "Python flow %s from %s (sha256 %s)" % (cls.__name__, script, code[:16]),
    }
    params = {}
    for attr, p in params_of(cls).items():
        name = p.baton_name
        if not re.match(r"^[a-z_][a-z0-9_]*$", name):
            raise BatonFlowError("Parameter %r: a name must be letters, digits, _ and -, not starting with a digit." % p.name)
        if p.baton_type is None:
            raise BatonFlowError("Parameter %r: type %r is not supported (str, int, float, bool or JSONType)." % (p.name, p.type))
        spec = {"type": p.baton_type}
        if p.help:
            spec["description"] = str(p.help)
        d = p.default
        if callable(d):
            raise BatonFlowError("Parameter %r: a default computed by a function is not supported yet." % p.name)
        if d is not None and not p.required:
            if p.type is JSONType and isinstance(d, str):
                try:
                    d = json.loads(d)
                except ValueError as e:
                    raise BatonFlowError("Parameter %r: the default is not JSON: %s" % (p.name, e))
            spec["default"] = d
        params[name] = spec
    if params:
        doc["params"] = params
    steps = []
    for node in graph:
        args = [python, script, "__baton_task", node.name]
        s = {"name": node.name}
        if node.needs:
            s["needs"] = list(node.needs)
            args += ["--parents", ",".join(node.needs)]
        if node.foreach_parent:
            var = graph[node.foreach_parent].foreach_var
            s["foreach"] = "%s/_foreach.json" % node.foreach_parent
            args += ["--foreach", var]
        if node.join_kind:
            args += ["--join", node.join_kind]
        if node.join_kind == "foreach":
            s["join"] = True
        elif graph.foreach_depth(node) > 0 and not node.foreach_parent:
            # In a foreach level and not a join: run once per task of the
            # level (baton would otherwise join after the foreach step).
            s["join"] = False
        if node.loop_from:
            args += ["--loop-from", node.loop_from]
        if node.type == "switch":
            s["switch"] = {"cases": dict(node.cases)}
            if node.back_to:
                s["switch"]["max_iterations"] = MAX_ITERATIONS
        s.update(_step_options(node))
        s["run"] = "cd %s && exec %s" % (shlex.quote(cwd), " ".join(shlex.quote(a) for a in args))
        steps.append(s)
    doc["steps"] = steps
    trig = _triggers(cls)
    if trig:
        doc["triggers"] = trig
    return doc


class Usage(Exception):
    pass


def _split_globals(argv):
    g = {"home": None, "db": None}
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        hit = False
        for k in ("home", "db"):
            if a == "--" + k:
                if i + 1 >= len(argv):
                    raise Usage("--%s needs a value" % k)
                g[k] = argv[i + 1]
                i += 2
                hit = True
            elif a.startswith("--%s=" % k):
                g[k] = a.split("=", 1)[1]
                i += 1
                hit = True
            if hit:
                break
        if not hit:
            rest.append(a)
            i += 1
    return g, rest


def _home(g):
    return os.path.abspath(g["home"] or os.environ.get("BATON_HOME") or ".baton")


def _baton_bin():
    b = os.environ.get("BATON_BIN") or shutil.which("baton")
    if not b:
        raise Usage("cannot find the baton binary: set BATON_BIN or put baton on PATH")
    return b


def _global_args(g):
    out = []
    if g["home"]:
        out += ["--home", g["home"]]
    if g["db"]:
        out += ["--db", g["db"]]
    return out


def _call(cmd, env=None):
    p = subprocess.Popen(cmd, env=env)
    while True:
        try:
            return p.wait()
        except KeyboardInterrupt:
            # baton got the signal too and cancels the run cleanly: wait for it.
            continue


def _parse_run(args, params):
    by_flag = {}
    for attr, p in params.items():
        by_flag[p.name] = p
        by_flag[p.baton_name] = p
    given, extra = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise Usage("unexpected argument %r" % a)
        name, eq, val = a[2:].partition("=")
        p = by_flag.get(name)
        if p is not None:
            if not eq:
                nxt = args[i + 1] if i + 1 < len(args) else None
                if p.type is bool and (nxt is None or nxt.startswith("--")):
                    val = "true"
                elif nxt is None:
                    raise Usage("parameter %s: --%s needs a value" % (p.name, name))
                else:
                    val = nxt
                    i += 1
            if p.type is bool and val.lower() in ("true", "false", "1", "0", "t", "f", "yes", "no"):
                val = {"yes": "true", "no": "false"}.get(val.lower(), val.lower())
            given += ["--param", "%s=%s" % (p.baton_name, val)]
            i += 1
            continue
        if name in ("workers", "max-workers", "tag"):
            if not eq:
                if i + 1 >= len(args):
                    raise Usage("--%s needs a value" % name)
                val = args[i + 1]
                i += 1
            extra += ["--tag" if name == "tag" else "--workers", val]
        elif name == "no-progress":
            extra.append("--no-progress")
        else:
            raise Usage("no such parameter: --%s (the flow's parameters: %s)" % (
                name, ", ".join(sorted(p.name for p in params.values())) or "none"))
        i += 1
    return given, extra


def _write_flow(doc, home):
    d = os.path.join(home, "python", doc["name"])
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "flow.json")
    data = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    try:
        with open(path) as f:
            if f.read() == data:
                return path
    except OSError:
        pass
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def _latest_run(g, name):
    out = subprocess.run([_baton_bin()] + _global_args(g) + ["runs", "--flow", name, "--limit", "1", "-o", "json"],
                         stdout=subprocess.PIPE, universal_newlines=True)
    if out.returncode != 0:
        raise Usage("cannot list the runs of flow %s (baton runs exited %d)" % (name, out.returncode))
    runs = json.loads(out.stdout or "[]")
    if not runs:
        raise Usage("flow %s has no run to resume: run it first" % name)
    return str(runs[0]["id"])


def show(graph, out):
    out.write("\n%s\n" % graph.name)
    if graph.doc.strip():
        out.write("    %s\n" % graph.doc.strip())
    for n in graph:
        out.write("\nStep %s\n" % n.name)
        if n.doc:
            out.write("    %s\n" % n.doc.strip().splitlines()[0])
        if n.type == "foreach":
            out.write("    => %s (foreach %s)\n" % (n.out[0], n.foreach_var))
        elif n.type == "switch":
            cases = ", ".join("%s: %s" % (k, v) for k, v in n.cases.items())
            out.write("    => switch on %s: {%s}%s\n" % (n.condition, cases, " (loop)" if n.back_to else ""))
        elif n.out:
            out.write("    => %s\n" % ", ".join(n.out))
        deco = ", ".join("@%s" % k for k in sorted(n.decos))
        if deco:
            out.write("    %s\n" % deco)
    out.write("\n")


def main(cls, script, argv):
    script = os.path.abspath(script)
    try:
        g, rest = _split_globals(argv)
        if not rest or rest[0] in ("help", "--help", "-h"):
            sys.stdout.write(USAGE % {"script": os.path.basename(script)})
            return 0 if rest else 2
        cmd, args = rest[0], rest[1:]
        if cmd not in ("run", "resume", "show", "export"):
            raise Usage("no command %r: use run, resume, show or export" % cmd)
        graph = FlowGraph(cls)
        if cmd == "show":
            show(graph, sys.stdout)
            return 0
        doc = generate(cls, graph, script, os.getcwd())
        if cmd == "export":
            json.dump(doc, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        env = dict(os.environ)
        env.pop("PYBATON_ORIGIN_RUN_ID", None)
        if cmd == "run":
            given, extra = _parse_run(args, params_of(cls))
            path = _write_flow(doc, _home(g))
            return _call([_baton_bin()] + _global_args(g) + ["run", path] + given + extra, env)
        # resume
        origin, frm, extra = None, None, []
        i = 0
        while i < len(args):
            a = args[i]
            name, eq, val = a.partition("=")
            if name in ("--origin-run-id", "--workers", "--max-workers"):
                if not eq:
                    if i + 1 >= len(args):
                        raise Usage("%s needs a value" % name)
                    val = args[i + 1]
                    i += 1
                if name == "--origin-run-id":
                    origin = val
                else:
                    extra += ["--workers", val]
            elif a == "--no-progress":
                extra.append("--no-progress")
            elif not a.startswith("-") and frm is None:
                if a not in graph.nodes:
                    raise BatonFlowError("resume: flow %s has no step %s" % (graph.name, a), step=a)
                frm = a
            else:
                raise Usage("resume: unexpected argument %r" % a)
            i += 1
        if origin is None:
            origin = _latest_run(g, doc["name"])
        env["PYBATON_ORIGIN_RUN_ID"] = origin
        cmdline = [_baton_bin()] + _global_args(g) + ["resume", origin] + (["--from", frm] if frm else []) + extra
        return _call(cmdline, env)
    except BatonFlowError as e:
        sys.stderr.write("Validity checker found an issue: %s\n" % e if e.step else "%s\n" % e)
        return 2
    except Usage as e:
        sys.stderr.write("%s\n" % e)
        return 2
