# Checks, through Metaflow's own client, that the latest CompareFlow run in
# the current directory's .metaflow succeeded and ran every foreach task:
# a zero exit code alone would not prove that all n tasks ran.
import sys

from metaflow import Flow, namespace

n = int(sys.argv[1])
namespace(None)
run = Flow("CompareFlow").latest_run
tasks = len(list(run["work_step"]))
total = run["end"].task.data.total
if not run.successful or tasks != n or total != n * (n - 1):
    sys.exit("metaflow run %s: successful=%s, %d of %d work tasks, total %d"
             % (run.id, run.successful, tasks, n, total))
print("metaflow run %s: %d of %d work tasks, total %d" % (run.id, tasks, n, total))
