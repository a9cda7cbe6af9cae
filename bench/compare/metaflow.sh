#!/usr/bin/env bash
# Runs the same foreach of Python tasks on baton and on Metaflow's local mode,
# interleaved, and prints every time, the medians and the ratio.
#
#   bench/compare/metaflow.sh [-n 100] [-r 3] [-w 2] [-k 0] [-d DIR] METAFLOW_CHECKOUT
#
# METAFLOW_CHECKOUT is a checkout of github.com/Netflix/metaflow; it runs from
# source (PYTHONPATH), so nothing is installed. See README.md beside this file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat >&2 <<'USAGE'
usage: metaflow.sh [-n ITEMS] [-r RUNS] [-w WORKERS] [-k WORK] [-d DIR] METAFLOW_CHECKOUT
  -n ITEMS    foreach width (default 100: 103 tasks with start, join and end)
  -r RUNS     runs per tool, interleaved baton, metaflow, baton, ... (default 3)
  -w WORKERS  tasks at once on both sides: baton --workers, metaflow --max-workers (default 2)
  -k WORK     iterations of the same Python loop in every work task (default 0)
  -d DIR      work folder (default: a fresh one under ${TMPDIR:-/var/tmp})
USAGE
	exit 2
}

n=100 runs=3 workers=2 work=0 dir=
while getopts "n:r:w:k:d:h" opt; do
	case $opt in
	n) n=$OPTARG ;;
	r) runs=$OPTARG ;;
	w) workers=$OPTARG ;;
	k) work=$OPTARG ;;
	d) dir=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
mf=$(cd "$1" && pwd) || die "no such folder: $1"
[ -f "$mf/metaflow/__init__.py" ] || die "$mf is not a Metaflow checkout (no metaflow/__init__.py)"
for v in "$n" "$runs" "$workers" "$work"; do
	[[ $v =~ ^[0-9]+$ ]] || die "not a whole number: $v"
done

setup_dir
build_baton
# Metaflow reads ~/.metaflowconfig and could send runs to S3 or a metadata
# service; an empty METAFLOW_HOME and explicit local settings keep it on the
# same local disk as baton.
mfenv=(env PYTHONPATH="$mf" METAFLOW_HOME="$dir/mf-config"
	METAFLOW_DEFAULT_DATASTORE=local METAFLOW_DEFAULT_METADATA=local
	USERNAME="${USERNAME:-${USER:-bench}}")
mkdir -p "$dir/mf-config"
echo "metaflow $("${mfenv[@]}" python3 -c 'import metaflow; print(metaflow.__version__)' 2>/dev/null || echo '(version unknown)') from $mf"
echo "$(python3 --version) on both sides"
echo "workload: start, $n-item foreach of Python tasks, join, end ($((n + 3)) tasks), $workers at once, work loop $work; $runs runs each"
echo

times_baton=() times_metaflow=()
for i in $(seq 1 "$runs"); do
	b="$dir/baton-$i"
	mkdir -p "$b"
	timed baton "$b/log" "$baton" --home "$b/home" run --no-progress --workers "$workers" \
		"$here/baton_flow.yaml" -p "n=$n" -p "work=$work"
	echo "baton    run $i: ${last} s"
	"$baton" --home "$b/home" show 1 --tasks -o json | python3 "$here/baton_check.py" work_step "$n" ||
		die "baton run $i did not do all its tasks"

	m="$dir/metaflow-$i"
	mkdir -p "$m"
	timed metaflow "$m/log" "${mfenv[@]}" METAFLOW_DATASTORE_SYSROOT_LOCAL="$m" \
		sh -c 'cd "$1" && shift && exec "$@"' sh "$m" \
		python3 "$here/metaflow_flow.py" --no-pylint run --max-workers "$workers" --n "$n" --work "$work"
	echo "metaflow run $i: ${last} s"
	(cd "$m" && "${mfenv[@]}" METAFLOW_DATASTORE_SYSROOT_LOCAL="$m" python3 "$here/metaflow_check.py" "$n") ||
		die "metaflow run $i did not do all its tasks"
done
report metaflow
