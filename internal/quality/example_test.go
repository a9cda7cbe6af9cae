package quality_test

import (
	"context"
	"fmt"
	"math"

	"github.com/baton-ml/baton/internal/quality"
)

func ExampleModel_Score() {
	ctx := context.Background()
	data := quality.Synthesize(2000, 0.4, 1) // signals, a rated sample, some titles broken
	m, err := quality.Train(ctx, data.Signals, data.Ratings, quality.TrainOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("held-out RMSE below half the mean's: %v\n", m.Metrics.RMSE < m.Metrics.RMSEBaseline/2)
	scores, _ := m.Score(ctx, data.Signals, quality.Shard{Index: 0, Count: 1}, math.NaN())
	for _, s := range scores {
		if sig, ok := data.Broken[s.Title]; ok && sig == "vmaf" {
			fmt.Println(s.Flagged, len(s.Reasons) > 0 && s.Reasons[0][:5] == "vmaf ")
			break
		}
	}
	// Output:
	// held-out RMSE below half the mean's: true
	// true true
}
