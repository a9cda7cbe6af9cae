package cli

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/canary"
)

func (a *app) canaryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "canary",
		Short: "Judge a canary deployment against its baseline",
	}
	cmd.AddCommand(a.canaryJudgeCmd())
	return cmd
}

func (a *app) canaryJudgeCmd() *cobra.Command {
	var basePath, canaryPath, cfgPath string
	cmd := &cobra.Command{
		Use:   "judge --baseline FILE --canary FILE [--config FILE]",
		Short: "Classify each metric of a canary and score it, as Kayenta's Netflix judge",
		Long: `Compare the metrics of a canary with those of its baseline. Each FILE is CSV
with the header metric,value and one observation a row (an empty value or NaN
is a missing observation).

Each metric gets a two-sided Mann–Whitney test at 98% confidence with the
Hodges–Lehmann estimate of the shift canary − baseline and its interval: High
when the interval lies above +25% of the estimate, Low when below −25%, Pass
otherwise, NoData when a side has no observation. The score is the weighted
share of Pass metrics by group; it is 0 when a critical metric is not Pass or
when half the metrics or more have no data. The result is pass at 75 or more,
marginal at 50 or more, fail below.

--config is YAML:

  metrics:
    errors: {direction: increase, critical: true, group: reliability}
    latency: {direction: either, allowed_increase: 1.1, must_have_data: true}
    throughput: {direction: decrease, muted: true}
  weights: {reliability: 60}
  thresholds: {pass: 75, marginal: 50}
  confidence: 0.98
  tolerance: 0.25

A failing canary is not a failing command: the exit code is 0 whatever the
result, and 2 for unreadable files or an invalid configuration.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if basePath == "" || canaryPath == "" {
				return usageErr("--baseline and --canary are required")
			}
			// The configuration is checked first: it is small, and an error
			// in it should not wait for large sample files.
			var cfg canary.Config
			if cfgPath != "" {
				f, err := os.Open(cfgPath)
				if err != nil {
					return usageErr("%w", err)
				}
				cfg, err = canary.LoadConfig(f, cfgPath)
				f.Close()
				if err != nil {
					return usageErr("%w", err)
				}
			}
			base, err := readCanarySamples(basePath)
			if err != nil {
				return err
			}
			can, err := readCanarySamples(canaryPath)
			if err != nil {
				return err
			}
			res := canary.Judge(base, can, cfg)
			if a.json() {
				return a.printJSON(res)
			}
			return a.printCanary(res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&basePath, "baseline", "", "CSV file (metric,value) of the baseline's observations")
	f.StringVar(&canaryPath, "canary", "", "CSV file (metric,value) of the canary's observations")
	f.StringVar(&cfgPath, "config", "", "YAML file of per-metric directions, criticality, groups, weights and thresholds")
	return cmd
}

// readCanarySamples reads a samples file; every failure is bad input
// (exit 2).
func readCanarySamples(path string) (map[string][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	defer f.Close()
	s, err := canary.ReadSamples(f, path)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	return s, nil
}

func (a *app) printCanary(res canary.Result) error {
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tCLASSIFICATION\tCRITICAL\tGROUP\tSHIFT\tINTERVAL\tEFFECT\tP-VALUE")
	for _, m := range res.Metrics {
		crit := "no"
		if m.Critical {
			crit = "yes"
		}
		class := string(m.Classification)
		if m.Muted {
			class += " (muted)"
		}
		interval := "-"
		if !math.IsNaN(float64(m.CILow)) {
			interval = "[" + canaryNum(m.CILow) + ", " + canaryNum(m.CIHigh) + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, class, crit, m.Group,
			canaryNum(m.Estimate), interval, canaryNum(m.EffectSize), canaryNum(m.PValue))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	line := fmt.Sprintf("score %.2f: %s", res.Score, res.Result)
	if res.Reason != "" {
		line += " (" + res.Reason + ")"
	}
	_, err := fmt.Fprintln(a.out, line)
	return err
}

// canaryNum shows a statistic with four significant digits, "-" when it
// is undefined.
func canaryNum(s canary.Stat) string {
	v := float64(s)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
