package cli

import (
	"math"
	"testing"
)

// A worker's --cpu is refused when it is not a number of cores it can
// offer, instead of quietly meaning the machine's (NaN) or none (0.0001).
func TestCapacityCPU(t *testing.T) {
	for _, bad := range []float64{math.NaN(), -1, 0.0001, 5000} {
		if _, err := (&capacityFlags{cpu: bad}).capacity(); err == nil {
			t.Errorf("--cpu %g accepted", bad)
		}
	}
	for cpu, want := range map[float64]int64{0.5: 500, 0.001: 1, 2.3: 2300, 4096: 4096000} {
		cp, err := (&capacityFlags{cpu: cpu}).capacity()
		if err != nil || cp.CPU != want {
			t.Errorf("--cpu %g: %d millicores, %v; want %d", cpu, cp.CPU, err, want)
		}
	}
}
