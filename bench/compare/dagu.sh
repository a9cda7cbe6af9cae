#!/usr/bin/env bash
# Runs the same foreach of tiny shell tasks on baton and on Dagu, with the
# same number of tasks at once, interleaved, and prints every time, the
# medians and the ratio.
#
#   bench/compare/dagu.sh [-n 100] [-r 3] [-w 2] [-m steps|parallel] [-b DAGU_BIN] [-d DIR] DAGU_CHECKOUT
#
# DAGU_CHECKOUT is a checkout of github.com/dagucloud/dagu (formerly
# dagu-org/dagu); it is built with go build. See README.md beside this file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat >&2 <<'USAGE'
usage: dagu.sh [-n ITEMS] [-r RUNS] [-w WORKERS] [-m MODE] [-b DAGU_BIN] [-d DIR] DAGU_CHECKOUT
  -n ITEMS    foreach width (default 100; start and check make it ITEMS+2 tasks)
  -r RUNS     runs per tool, interleaved baton, dagu, baton, ... (default 3)
  -w WORKERS  tasks at once on both sides: baton --workers, Dagu max_active_steps
              or parallel.max_concurrent (default 2)
  -m MODE     the Dagu DAG's shape (default steps):
                steps     one step per item in one DAG: Dagu's cheapest way
                parallel  parallel: over the items, calling a one-step child
                          DAG per item: Dagu's foreach
  -b DAGU_BIN use this dagu binary instead of building the checkout
  -d DIR      work folder (default: a fresh one under ${TMPDIR:-/var/tmp})
USAGE
	exit 2
}

n=100 runs=3 workers=2 mode=steps dagu= dir=
while getopts "n:r:w:m:b:d:h" opt; do
	case $opt in
	n) n=$OPTARG ;;
	r) runs=$OPTARG ;;
	w) workers=$OPTARG ;;
	m) mode=$OPTARG ;;
	b) dagu=$OPTARG ;;
	d) dir=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
src=$(cd "$1" && pwd) || die "no such folder: $1"
for v in "$n" "$runs" "$workers"; do
	[[ $v =~ ^[0-9]+$ ]] || die "not a whole number: $v"
done
case $mode in steps | parallel) ;; *) die "-m must be steps or parallel, not $mode" ;; esac

setup_dir
build_baton
if [ -z "$dagu" ]; then
	[ -f "$src/cmd/main.go" ] || die "$src is not a Dagu checkout (no cmd/main.go)"
	echo "building dagu from $src"
	(cd "$src" && go build -o "$dir/bin/dagu" ./cmd) || die "go build of dagu failed"
	dagu="$dir/bin/dagu"
fi
echo "dagu: $("$dagu" version 2>&1 | head -n 1)${src:+, $(git -C "$src" describe --tags --always 2>/dev/null || echo 'no git history') from $src}"
echo "workload: start, $n-item foreach of shell tasks (Dagu: $mode), check ($((n + 2)) tasks), $workers at once; $runs runs each"
echo

# The commands are those of examples/bench/foreach.yaml, which baton runs:
# awk writes the items, each task writes its item to a file, check counts
# the files.
items_awk='awk -v n='"$n"' '\''BEGIN { printf "["; for (i = 0; i < n; i++) printf "%s\"item-%d\"", (i ? "," : ""), i; print "]" }'\'
dag() { # dag OUT: the DAG file for one run writing under OUT, on stdout
	local out=$1 i
	echo "type: graph"
	echo "max_active_steps: $workers"
	echo "steps:"
	echo "  - name: start"
	echo "    script: |"
	echo "      $items_awk | tee $out/items.json"
	if [ "$mode" = parallel ]; then echo "    output: ITEMS"; fi
	if [ "$mode" = steps ]; then
		for i in $(seq 0 $((n - 1))); do
			echo "  - name: work-$i"
			echo "    depends: [start]"
			echo "    command: printf '%s' item-$i > $out/work/item-$i.txt"
		done
	else
		echo "  - name: work"
		echo "    depends: [start]"
		echo "    call: work-item"
		echo "    parallel:"
		echo "      items: \${ITEMS}"
		echo "      max_concurrent: $workers"
	fi
	echo "  - name: check"
	if [ "$mode" = steps ]; then
		echo "    depends: [$(seq -s, -f 'work-%g' 0 $((n - 1)))]"
	else
		echo "    depends: [work]"
	fi
	echo "    script: |"
	echo "      got=\$(ls $out/work | wc -l | tr -d ' ')"
	echo "      echo \"\$got of $n tasks wrote their output\""
	echo "      [ \"\$got\" -eq $n ]"
	if [ "$mode" = parallel ]; then
		echo "---"
		echo "name: work-item"
		echo "steps:"
		# Dagu hands each item to the child DAG as its first positional
		# parameter.
		echo "  - command: printf '%s' \"\$1\" > $out/work/\$1.txt"
	fi
}

times_baton=() times_dagu=()
for i in $(seq 1 "$runs"); do
	b="$dir/baton-$i"
	mkdir -p "$b"
	timed baton "$b/log" "$baton" --home "$b/home" run --no-progress --workers "$workers" \
		"$repo/examples/bench/foreach.yaml" -p "n=$n"
	echo "baton run $i: ${last} s"
	"$baton" --home "$b/home" show 1 --tasks -o json | python3 "$here/baton_check.py" work "$n" ||
		die "baton run $i did not do all its tasks"

	d="$dir/dagu-$i"
	mkdir -p "$d/out/work"
	dag "$d/out" >"$d/compare.yaml"
	timed dagu "$d/log" env DAGU_HOME="$d/home" "$dagu" start "$d/compare.yaml"
	echo "dagu  run $i: ${last} s"
	got=$(find "$d/out/work" -type f -name 'item-*.txt' | wc -l)
	[ "$got" -eq "$n" ] || die "dagu run $i wrote $got of $n outputs (log: $d/log)"
	echo "dagu run $i: $got of $n work tasks wrote their output"
done
report dagu
