# Shared by metaflow.sh and dagu.sh: building baton, timing runs, medians.
# Sourced, not run.

# repo is the baton checkout this script lives in.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here="$repo/bench/compare"

die() { echo "compare: $*" >&2; exit 1; }

# now prints the time in seconds with nanoseconds, for wall-clock timing.
now() { date +%s.%N; }

# setup_dir makes the fresh work folder every run lives under. It defaults to
# /var/tmp, not /tmp, because /tmp is tmpfs on many machines and the point is
# the disk users have; both tools run under the same folder, so on the same
# disk.
setup_dir() {
	if [ -z "${dir:-}" ]; then
		dir=$(mktemp -d "${TMPDIR:-/var/tmp}/baton-compare.XXXXXX")
	else
		mkdir -p "$dir"
		dir=$(cd "$dir" && pwd)
	fi
	echo "work folder: $dir ($(stat -f -c %T "$dir") file system)"
}

build_baton() {
	echo "building baton from $repo"
	(cd "$repo" && go build -o "$dir/bin/baton" ./cmd/baton) || die "go build of baton failed"
	baton="$dir/bin/baton"
}

# timed LABEL LOG CMD... runs CMD with its output to LOG, appends the wall
# time to the list for LABEL and prints it. A failed run ends the comparison:
# a time for a run that did not finish its work would mean nothing.
timed() {
	local label=$1 log=$2
	shift 2
	local t0 t1
	t0=$(now)
	if ! "$@" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "$label run failed (exit code above; whole log in $log)"
	fi
	t1=$(now)
	last=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	eval "times_$label+=(\"$last\")"
}

# median prints the median of its arguments.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) printf "%.3f", v[(NR + 1) / 2]
		else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# report OTHER prints every time, both medians and the ratio other/baton.
report() {
	local other=$1
	local -n bt=times_baton ot="times_$other"
	local mb mo
	mb=$(median "${bt[@]}")
	mo=$(median "${ot[@]}")
	echo
	echo "baton   runs (s): ${bt[*]}"
	echo "$other runs (s): ${ot[*]}"
	echo "median: baton ${mb} s, $other ${mo} s"
	awk -v b="$mb" -v o="$mo" -v name="$other" 'BEGIN {
		printf "ratio: %s / baton = %.1fx\n", name, o / b }'
}
