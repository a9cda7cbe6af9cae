#!/usr/bin/env python3
"""The 2,000-task shell foreach through the CLI, beside a plain loop, on a disk.

Runs, interleaved in one process so that whatever else loads the machine
hits both sides alike:

  baton   `baton --home DIR/home-R run examples/bench/foreach.yaml --param n=N`,
          timed end to end (process start to exit), in a fresh home each round
  loop    a plain sequential Python loop of the same `sh -c` commands, each
          writing one file (`printf '%s' "$ITEM" > "$OUT/$I.txt"`), into a
          fresh folder each round

Each round runs both sides, in alternating order (baton first in odd rounds,
the loop first in even ones), and the script prints every round, the median
of each side and the ratio of the medians. Everything happens under --dir
(default: a new folder in the current directory, i.e. on the disk the
checkout is on, not a tmpfs); the file system type is printed.

  go build -o /tmp/baton ./cmd/baton
  python3 bench/foreach-vs-loop.py --baton /tmp/baton --rounds 5

Exit status 0 whatever the ratio: this measures, it does not judge.
"""

import argparse
import os
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


def run_baton(baton, home, n):
    t0 = time.perf_counter()
    p = subprocess.run([baton, "--home", home, "run", FLOW, "--param", f"n={n}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"baton run failed (exit {p.returncode}):\n{p.stdout}")
    return took


def run_loop(out, n):
    os.makedirs(out)
    env = dict(os.environ)
    t0 = time.perf_counter()
    for i in range(n):
        env["ITEM"] = f"item-{i}"
        env["OUT"] = out
        env["I"] = str(i)
        subprocess.run(["/bin/sh", "-c", 'printf \'%s\' "$ITEM" > "$OUT/$I.txt"'], env=env, check=True)
    took = time.perf_counter() - t0
    got = len(os.listdir(out))
    if got != n:
        sys.exit(f"loop: {got} of {n} files written")
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baton", default="baton", help="the baton binary (build it first: go build -o /tmp/baton ./cmd/baton)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=2000, help="tasks (and loop commands) per round")
    ap.add_argument("--dir", default=None, help="where homes and loop folders go (default: a new folder here)")
    ap.add_argument("--keep", action="store_true", help="keep the folder")
    a = ap.parse_args()

    base = a.dir or tempfile.mkdtemp(prefix="baton-foreach-vs-loop-", dir=os.getcwd())
    os.makedirs(base, exist_ok=True)
    print(f"dir {base} ({fstype(base)}), n={a.n}, rounds={a.rounds}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    res = {"baton": [], "loop": []}
    try:
        for r in range(a.rounds):
            order = ["baton", "loop"] if r % 2 == 0 else ["loop", "baton"]
            for side in order:
                if side == "baton":
                    took = run_baton(a.baton, os.path.join(base, f"home-{r}"), a.n)
                else:
                    took = run_loop(os.path.join(base, f"loop-{r}"), a.n)
                res[side].append(took)
                print(f"round {r + 1} {side:5s} {took:6.2f} s  {a.n / took:7.0f} tasks/s", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    mb, ml = statistics.median(res["baton"]), statistics.median(res["loop"])
    print(f"median baton {mb:.2f} s = {a.n / mb:.0f} tasks/s (range {a.n / max(res['baton']):.0f}-{a.n / min(res['baton']):.0f})")
    print(f"median loop  {ml:.2f} s = {a.n / ml:.0f} tasks/s (range {a.n / max(res['loop']):.0f}-{a.n / min(res['loop']):.0f})")
    print(f"baton / loop: {ml / mb:.2f}x the loop's rate")


if __name__ == "__main__":
    main()
