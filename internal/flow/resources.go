package flow

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Resources is what each task of a step needs of the worker that runs it.
// Through the queue (PostgreSQL, `baton worker`) a task goes only to a
// worker with that much free, and a worker never takes more than it has;
// tasks run in the process (`baton run` on SQLite) are not placed.
type Resources struct {
	// CPU in cores (0.5 is half a core).
	CPU float64 `json:"cpu,omitempty"`
	// Memory in bytes (YAML: 512Mi, 2Gi, 1G or a number of bytes).
	Memory int64 `json:"memory,omitempty"`
	GPU    int   `json:"gpu,omitempty"`
}

// Milli returns the CPU in thousandths of a core, as workers count it.
func (r Resources) Milli() int64 { return int64(math.Ceil(r.CPU * 1000)) }

// MiB returns the memory in MiB, rounded up.
func (r Resources) MiB() int64 { return (r.Memory + 1<<20 - 1) >> 20 }

var byteUnits = []struct {
	suffix string
	mult   int64
}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}

// ParseBytes reads a size: a whole number of bytes, or a number with a
// unit (Ki, Mi, Gi, Ti or K, M, G, T).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = rest, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size: write bytes, or a number with Ki, Mi, Gi, Ti (or K, M, G, T): 512Mi, 2Gi", s)
	}
	return int64(math.Ceil(v * float64(mult))), nil
}

func resourcesProblems(r *Resources) map[string]string {
	out := map[string]string{}
	if r.CPU < 0 || r.CPU > 4096 || math.IsNaN(r.CPU) {
		out["cpu"] = fmt.Sprintf("cpu is %g: a number of cores, from 0 to 4096", r.CPU)
	}
	if r.Memory < 0 || r.Memory > 1<<50 {
		out["memory"] = fmt.Sprintf("memory is %d bytes: at most 1Pi", r.Memory)
	}
	if r.GPU < 0 || r.GPU > 1024 {
		out["gpu"] = fmt.Sprintf("gpu is %d: a count, from 0 to 1024", r.GPU)
	}
	return out
}
