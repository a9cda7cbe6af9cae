#!/usr/bin/env python3
"""The 2,000-task shell foreach through the CLI, beside a plain loop, on a disk.

Runs, interleaved in one process so that whatever else loads the machine
hits both sides alike:

  baton   `baton --home DIR/home-R run examples/bench/foreach.yaml --param n=N`,
          timed end to end (process start to exit), in a fresh home each round
  loop    a plain sequential Python loop of the same `sh -c` commands, each
          writing one file (`printf '%s' "$ITEM" > "$OUT/$I.txt"`), into a
          fresh folder each round

Each round runs every side, in an order that rotates from round to round,
and the script prints every round (wall time, and CPU time: baton with the
shells it ran; the loop's shells and the loop itself), the median of each
side and its ratio to the loop's median. Everything happens under --dir
(default: a new folder in the current directory, i.e. on the disk the
checkout is on, not a tmpfs); the file system type is printed.

  go build -o /tmp/baton ./cmd/baton
  python3 bench/foreach-vs-loop.py --baton /tmp/baton --rounds 5

--baton may be given more than once, as LABEL=PATH, to measure builds
against each other (before and after a change) in the same rounds:

  python3 bench/foreach-vs-loop.py --baton old=/tmp/baton-old --baton new=/tmp/baton

Exit status 0 whatever the ratio: this measures, it does not judge.
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FLOW = os.path.join(os.path.dirname(HERE), "examples", "bench", "foreach.yaml")


def fstype(path):
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_baton(baton, home, n, flow):
    c0 = cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([baton, "--home", home, "run", flow, "--param", f"n={n}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"baton run failed (exit {p.returncode}):\n{p.stdout}")
    # baton and every shell it waited for.
    return took, cpu(resource.RUSAGE_CHILDREN) - c0


def run_loop(out, n):
    os.makedirs(out)
    env = dict(os.environ)
    c0 = cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for i in range(n):
        env["ITEM"] = f"item-{i}"
        env["OUT"] = out
        env["I"] = str(i)
        subprocess.run(["/bin/sh", "-c", 'printf \'%s\' "$ITEM" > "$OUT/$I.txt"'], env=env, check=True)
    took = time.perf_counter() - t0
    used = cpu(resource.RUSAGE_CHILDREN) + cpu(resource.RUSAGE_SELF) - c0
    got = len(os.listdir(out))
    if got != n:
        sys.exit(f"loop: {got} of {n} files written")
    # The shells and the loop itself.
    return took, used


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baton", action="append", default=[],
                    help="the baton binary, or LABEL=PATH; repeatable (default: baton on the PATH)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=2000, help="tasks (and loop commands) per round")
    ap.add_argument("--dir", default=None, help="where homes and loop folders go (default: a new folder here)")
    ap.add_argument("--keep", action="store_true", help="keep the folder")
    ap.add_argument("--flow", default=FLOW,
                    help="the flow baton runs; it must take param n (default: examples/bench/foreach.yaml)")
    a = ap.parse_args()

    base = a.dir or tempfile.mkdtemp(prefix="baton-foreach-vs-loop-", dir=os.getcwd())
    os.makedirs(base, exist_ok=True)
    print(f"flow {os.path.relpath(a.flow)}, dir {base} ({fstype(base)}), n={a.n}, rounds={a.rounds}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    batons = {}
    for b in a.baton or ["baton"]:
        label, sep, path = b.partition("=")
        if not sep:
            label, path = ("baton" if len(a.baton) <= 1 else b), b
        batons[label] = os.path.abspath(path) if os.sep in path else path
    sides = list(batons) + ["loop"]
    res = {s: [] for s in sides}
    cpus = {s: [] for s in sides}
    width = max(len(s) for s in sides)
    try:
        for r in range(a.rounds):
            for i in range(len(sides)):
                side = sides[(i + r) % len(sides)]
                if side == "loop":
                    took, used = run_loop(os.path.join(base, f"loop-{r}"), a.n)
                else:
                    took, used = run_baton(batons[side], os.path.join(base, f"home-{side}-{r}"), a.n, a.flow)
                res[side].append(took)
                cpus[side].append(used)
                print(f"round {r + 1} {side:{width}s} {took:6.2f} s  {a.n / took:7.0f} tasks/s  cpu {used:5.2f} s  "
                      f"load {os.getloadavg()[0]:4.1f}", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    ml = statistics.median(res["loop"])
    for side in sides:
        m = statistics.median(res[side])
        print(f"median {side:{width}s} {m:6.2f} s = {a.n / m:5.0f} tasks/s "
              f"(range {a.n / max(res[side]):.0f}-{a.n / min(res[side]):.0f}), {ml / m:.2f}x the loop's rate; "
              f"cpu {statistics.median(cpus[side]):.2f} s")


if __name__ == "__main__":
    main()
