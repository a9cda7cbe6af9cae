package abtest_test

import (
	"fmt"
	"strings"

	"github.com/baton-ml/baton/internal/abtest"
)

func ExampleAnalyze() {
	// Minutes watched per unit in the experiment, and in the week before
	// it (the CUPED covariate).
	const data = `unit,variant,minutes,minutes_pre
u1,control,10.1,9.8
u2,treatment,12.0,10.4
u3,control,8.2,8.5
u4,treatment,11.1,9.0
u5,control,12.4,12.6
u6,treatment,13.9,12.1
u7,control,9.7,9.1
u8,treatment,10.2,8.1
`
	tab, err := abtest.ReadTable(strings.NewReader(data), "minutes.csv")
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := abtest.Analyze(tab, abtest.Options{
		Control:    "control",
		Covariates: map[string]string{"minutes": "minutes_pre"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("SRM p %.2f ok %v\n", rep.SRM.PValue, rep.SRM.OK)
	for _, m := range rep.Metrics {
		for _, c := range m.Comparisons {
			fmt.Printf("%s %s %s: lift %+.2f [%.2f, %.2f] p %.4f significant %v\n",
				m.Name, c.Variant, c.Method, c.LiftAbs, c.CILow, c.CIHigh, c.PValue, c.Significant)
		}
	}
	// Output:
	// SRM p 1.00 ok true
	// minutes treatment welch: lift +1.70 [-1.18, 4.58] p 0.1984 significant false
	// minutes treatment cuped: lift +1.79 [1.17, 2.41] p 0.0013 significant true
}

func ExampleAccumulator() {
	// A guardrail monitor feeds observations as they arrive and reads an
	// anytime-valid interval whenever it likes.
	var acc abtest.Accumulator
	for i := range 2000 {
		x := float64(i%7) + 100
		acc.Add("control", x)
		acc.Add("canary", x+0.4)
	}
	low, high := abtest.SequentialInterval(acc.Summary("control"), acc.Summary("canary"), 0.05, abtest.DefaultTuning)
	fmt.Printf("latency lift in [%.3f, %.3f]\n", low, high)
	// Output:
	// latency lift in [0.208, 0.592]
}

func ExampleCochranQ() {
	// A lift of 0.4 in one market and about 0 in four others, each with
	// standard error 0.1: the effect differs between markets.
	q := abtest.CochranQ([]float64{0.4, 0.01, -0.02, 0.03, 0}, []float64{0.1, 0.1, 0.1, 0.1, 0.1}, 0.05)
	fmt.Printf("Q %.2f, df %d, p %.4f, I² %.2f, heterogeneous %v\n", q.Q, q.DF, q.PValue, q.I2, q.Heterogeneous)
	fmt.Printf("%.3f\n", abtest.BenjaminiHochberg([]float64{0.001, 0.04, 0.03, 0.5}))
	// Output:
	// Q 12.61, df 4, p 0.0133, I² 0.68, heterogeneous true
	// [0.004 0.053 0.053 0.500]
}
