# Checks, from `baton show --tasks -o json` on stdin, that the run succeeded
# and that STEP ran N tasks, each of which succeeded: a zero exit code alone
# would not prove that every foreach task ran.
import json
import sys

step, n = sys.argv[1], int(sys.argv[2])
run = json.load(sys.stdin)
tasks = [t for s in run["steps"] if s["name"] == step for t in s.get("tasks") or []]
ok = sum(1 for t in tasks if t["status"] == "succeeded")
if run["status"] != "succeeded" or ok != n:
    sys.exit("baton: run %s, %d of %d %s tasks succeeded"
             % (run["status"], ok, n, step))
print("baton: %d of %d %s tasks succeeded" % (ok, n, step))
