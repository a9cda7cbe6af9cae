"""The flow's graph, found statically from the source as Metaflow does:
each step's last statement is its self.next(...) call."""

import ast
import re
import sys

from .errors import BatonFlowError

STEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class Node(object):
    def __init__(self, name, func_ast, func):
        self.name = name
        self.func = func
        self.lineno = func_ast.lineno
        self.doc = ast.get_docstring(func_ast) or ""
        self.num_args = len(func_ast.args.args)
        self.is_join = self.num_args == 2
        self.decos = dict(getattr(func, "_baton_decos", {}))
        self.out = []  # targets, in order
        self.type = None  # start|linear|split-static|foreach|switch|join|end
        self.foreach_var = None
        self.condition = None
        self.cases = {}  # case -> step
        self.has_next = False
        # Filled by the graph:
        self.needs = []  # forward predecessors
        self.back_to = []  # loop heads this switch leads back to
        self.loop_from = None  # for a loop head: the switch leading back here
        self.stack = None  # enclosing splits: [(kind, step)]
        self.foreach_parent = None  # the step whose foreach opens this one's level
        self.join_kind = None  # "foreach" or "static" for a join

    def __repr__(self):
        return "Node(%s %s -> %s)" % (self.name, self.type, self.out)


def _err(msg, node=None):
    return BatonFlowError(msg, step=node.name if node else None, lineno=node.lineno if node else None)


def _self_attr(n):
    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
        return n.attr
    return None


def _class_ast(cls):
    mod = sys.modules.get(cls.__module__)
    path = getattr(mod, "__file__", None)
    if not path:
        raise BatonFlowError("cannot find the source of flow %s" % cls.__name__)
    with open(path) as f:
        src = f.read()
    tree = ast.parse(src, path)
    for n in ast.walk(tree):
        if isinstance(n, ast.ClassDef) and n.name == cls.__name__:
            return n, path
    raise BatonFlowError("cannot find class %s in %s" % (cls.__name__, path))


class FlowGraph(object):
    def __init__(self, cls):
        self.name = cls.__name__
        self.doc = cls.__doc__ or ""
        cdef, self.path = _class_ast(cls)
        defs = {n.name: n for n in cdef.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.nodes = {}
        order = []
        for name in dir(cls):
            f = getattr(cls, name, None)
            if callable(f) and getattr(f, "is_step", False):
                order.append(name)
        for name in order:
            if name not in defs:
                raise BatonFlowError("Step *%s* is not defined in the body of class %s: steps inherited from another class are not supported yet" % (name, cls.__name__), step=name)
        order.sort(key=lambda n: defs[n].lineno)
        for name in order:
            node = Node(name, defs[name], getattr(cls, name))
            self._parse_next(node, defs[name])
            self.nodes[name] = node
        self.order = order
        self._lint()

    def __getitem__(self, name):
        return self.nodes[name]

    def __iter__(self):
        return (self.nodes[n] for n in self.order)

    def _parse_next(self, node, fdef):
        body = fdef.body
        last = body[-1] if body else None
        call = None
        if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and _self_attr(last.value.func) == "next":
            call = last.value
        if call is None:
            for n in ast.walk(fdef):
                if isinstance(n, ast.Call) and _self_attr(n.func) == "next":
                    raise _err("Step *%s* calls self.next() on line %d, but not as its last statement: self.next() must be the last line of a step." % (node.name, n.lineno), node)
            return
        node.has_next = True
        kw = {}
        for k in call.keywords:
            if k.arg not in ("foreach", "condition"):
                raise _err("Step *%s*: self.next() argument %r is not supported (only foreach= and condition=)." % (node.name, k.arg), node)
            if not (isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)):
                raise _err("Step *%s*: %s= in self.next() must be a string literal, the name of an attribute." % (node.name, k.arg), node)
            kw[k.arg] = k.value.value
        if "foreach" in kw and "condition" in kw:
            raise _err("Step *%s*: self.next() cannot have both foreach= and condition=." % node.name, node)
        args = call.args
        if len(args) == 1 and isinstance(args[0], ast.Dict):
            if "condition" not in kw:
                raise _err("Step *%s*: a switch (self.next({...})) needs condition=\"attribute\"." % node.name, node)
            for k, v in zip(args[0].keys, args[0].values):
                if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                    raise _err("Step *%s*: the cases of a switch must be string literals." % node.name, node)
                t = _self_attr(v)
                if t is None:
                    raise _err("Step *%s*: case %r of the switch must be a step, as self.step_name." % (node.name, k.value), node)
                node.cases[k.value] = t
                if t not in node.out:
                    node.out.append(t)
            if not node.cases:
                raise _err("Step *%s*: a switch needs at least one case." % node.name, node)
            node.type = "switch"
            node.condition = kw["condition"]
            return
        if "condition" in kw:
            raise _err("Step *%s*: condition= needs a dict of cases: self.next({\"a\": self.a, ...}, condition=\"attr\")." % node.name, node)
        for a in args:
            t = _self_attr(a)
            if t is None:
                raise _err("Step *%s*: the arguments of self.next() must be steps, as self.step_name." % node.name, node)
            node.out.append(t)
        if not node.out:
            raise _err("Step *%s*: self.next() needs at least one step." % node.name, node)
        if "foreach" in kw:
            if len(node.out) != 1:
                raise _err("Step *%s* has a foreach transition to %d steps: a foreach goes to exactly one step." % (node.name, len(node.out)), node)
            node.type = "foreach"
            node.foreach_var = kw["foreach"]
        elif len(node.out) > 1:
            node.type = "split-static"
        else:
            node.type = "linear"

    def _lint(self):
        nodes = self.nodes
        for n in self:
            if not STEP_NAME.match(n.name):
                raise _err("Step *%s*: a step name must be lowercase letters, digits and _, starting with a letter or digit." % n.name, n)
            if n.num_args not in (1, 2):
                raise _err("Step *%s* takes %d arguments: a step takes self, and a join step also inputs." % (n.name, n.num_args), n)
        if "start" not in nodes:
            raise BatonFlowError("Add a step named *start*: every flow begins with it.")
        if "end" not in nodes:
            raise BatonFlowError("Add a step named *end*: every flow ends with it.")
        if nodes["start"].is_join:
            raise _err("The *start* step cannot take inputs.", nodes["start"])
        if nodes["end"].has_next:
            raise _err("The *end* step must not call self.next(): it ends the flow.", nodes["end"])
        for n in self:
            if n.name != "end" and not n.has_next:
                raise _err("Step *%s* is missing a self.next() transition to the next step. Add a self.next() as the last line in the function." % n.name, n)
            for t in n.out:
                if t not in nodes:
                    raise _err("Step *%s* specifies a self.next() transition to an unknown step, *%s*." % (n.name, t), n)
                if n.type != "switch" and t == n.name:
                    raise _err("Step *%s* leads to itself: only a switch may go back (a loop)." % n.name, n)
            if n.name == "end":
                n.type = "end"
            elif n.type in ("linear", None) and n.is_join:
                n.type = "join"
        # Back edges: a DFS from start; an edge to a step on the current path
        # goes back (a loop), allowed only from a switch.
        seen, onpath = set(), set()

        def dfs(u):
            seen.add(u.name)
            onpath.add(u.name)
            for t in u.out:
                v = nodes[t]
                if t in onpath:
                    if u.type != "switch":
                        raise _err("Step *%s* goes back to step *%s*, a cycle: only a switch (self.next({...}, condition=...)) may lead back." % (u.name, t), u)
                    u.back_to.append(t)
                    v.loop_from = u.name
                elif t not in seen:
                    dfs(v)
            onpath.discard(u.name)

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(nodes) + 100))
        dfs(nodes["start"])
        for n in self:
            if n.name not in seen:
                raise _err("Step *%s* is unreachable from the start step: no self.next() leads to it." % n.name, n)
        for n in self:
            for t in n.out:
                if t not in n.back_to:
                    nodes[t].needs.append(n.name)
        # Splits and joins, in topological order of the forward edges.
        indeg = {n.name: len(n.needs) for n in self}
        ready = ["start"]
        nodes["start"].stack = []
        done = []
        incoming = {n.name: [] for n in self}
        while ready:
            u = nodes[ready.pop(0)]
            if u.name != "start":
                self._settle(u, incoming[u.name])
            done.append(u.name)
            for t in u.out:
                if t in u.back_to:
                    continue
                if u.type == "foreach":
                    s = u.stack + [("foreach", u.name)]
                elif u.type == "split-static":
                    s = u.stack + [("static", u.name)]
                else:
                    s = u.stack
                incoming[t].append((u.name, s))
                indeg[t] -= 1
                if indeg[t] == 0:
                    ready.append(t)
        self.topo = done
        end = nodes["end"]
        if end.stack:
            kind, at = end.stack[-1]
            raise _err("Step *end* is inside the %s split of step *%s*: add a join step (one taking inputs) before it." % (kind, at), end)
        for n in self:
            if n.type == "foreach" and nodes[n.out[0]].is_join:
                raise _err("Step *%s*: the step after a foreach, *%s*, cannot be a join." % (n.name, n.out[0]), n)

    def _settle(self, v, incoming):
        stacks = [s for _, s in incoming]
        if v.is_join:
            first = stacks[0]
            for s in stacks[1:]:
                if s != first:
                    raise _err("Step *%s* joins steps (%s) from different splits." % (v.name, ", ".join(p for p, _ in incoming)), v)
            if not first:
                raise _err("Step *%s* takes inputs (a join step), but no foreach or static split leads to it: remove the inputs argument." % v.name, v)
            kind, at = first[-1]
            if kind == "static":
                want = set(self.nodes[at].out)
                got = set()
                for p, _ in incoming:
                    got.add(p)
                if len(incoming) != len(self.nodes[at].out):
                    raise _err("Step *%s* joins %d branches (%s), but the split at step *%s* makes %d: every branch of a split must reach its join." % (v.name, len(incoming), ", ".join(sorted(got)), at, len(want)), v)
            v.join_kind = kind
            v.stack = first[:-1]
        else:
            first = stacks[0]
            for s in stacks[1:]:
                if s != first:
                    raise _err("Step *%s* is reached from several branches (%s): make it a join step by giving it an inputs argument." % (v.name, ", ".join(p for p, _ in incoming)), v)
            if len(incoming) > 1 and not all(self.nodes[p].type == "switch" or self._after_switch(p) for p, _ in incoming):
                raise _err("Step *%s* is reached from several branches (%s): make it a join step by giving it an inputs argument." % (v.name, ", ".join(p for p, _ in incoming)), v)
            v.stack = first
        if len(incoming) == 1 and self.nodes[incoming[0][0]].type == "foreach":
            v.foreach_parent = incoming[0][0]

    def _after_switch(self, name):
        # True when a switch is upstream of name with no split since: its
        # cases converge on a plain step.
        seen = set()
        todo = [name]
        while todo:
            n = self.nodes[todo.pop()]
            if n.name in seen:
                continue
            seen.add(n.name)
            if n.type == "switch":
                return True
            if n.type in ("split-static", "foreach") or n.is_join:
                return False
            todo.extend(n.needs)
        return False

    def foreach_depth(self, node):
        return sum(1 for k, _ in node.stack if k == "foreach")
