package stat_test

import (
	"fmt"

	"github.com/baton-ml/baton/internal/stat"
)

func ExamplePSI() {
	// Scores of the last training set, and of this week's traffic, which
	// has moved up.
	ref := make([]float64, 1000)
	cur := make([]float64, 1000)
	for i := range ref {
		ref[i] = float64(i) / 1000
		cur[i] = 0.15 + float64(i)/1000
	}
	psi := stat.PSI(ref, cur)
	fmt.Printf("PSI %.3f, drifted: %v\n", psi, psi >= 0.2)

	fmt.Printf("unchanged: %.3f\n", stat.PSI(ref, ref))
	// Output:
	// PSI 0.862, drifted: true
	// unchanged: 0.000
}
