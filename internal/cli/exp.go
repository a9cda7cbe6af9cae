package cli

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/abtest"
	"github.com/baton-ml/baton/internal/kv"
)

// expCmd is `baton exp`, the experiment commands.
func (a *app) expCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exp",
		Short: "A/B experiments: allocation, exposures, guardrails, analysis, reports, promotion",
	}
	cmd.AddCommand(a.expAnalyzeCmd())
	cmd.AddCommand(a.expMoreCmds()...)
	return cmd
}

func (a *app) expAnalyzeCmd() *cobra.Command {
	var (
		opts       abtest.Options
		metrics    []string
		covariates []string
		weights    string
	)
	cmd := &cobra.Command{
		Use:   "analyze FILE --control NAME [--metric COL]... [--covariate COL=PRECOL]... [--sequential]",
		Short: "Compare each variant of an experiment with its control, metric by metric",
		Long: `Analyze an A/B experiment. FILE is CSV with a header unit,variant,<metric
columns> and one row per unit ("-" reads standard input); an empty cell or NaN
is a missing value of that metric.

For each metric (default: every numeric column except the covariates and the
breakdown column) the report gives each variant's n, mean and variance, and
compares each other variant with the control:
  welch       Welch's t-test: lift (treatment − control), its interval at
              1 − alpha and the two-sided p-value
  cuped       with --covariate METRIC=PRECOL: the same test on values adjusted
              by the pre-experiment column, theta pooled over all units
  sequential  with --sequential: an anytime-valid confidence sequence, safe
              to look at as often as you like (tuning N* = --tuning)
A sample ratio mismatch check (chi-square against --weights, equal by default)
flags a split that went wrong: then no comparison is to be trusted.
--breakdown COL repeats the analysis for the units of each value of COL.
--segment COL (repeatable: market, tenure bucket...) estimates heterogeneous
effects: per metric, per value of COL and per treatment, Welch's lift with
n per variant, interval and p-value, the p-values adjusted by
Benjamini–Hochberg across the column's values and treatments, and Cochran's
Q (with I²) testing whether the effect differs between the values.

Finding no effect, or an SRM, is not a failure: the exit code is 0; it is 2
for an unreadable file, an unknown column or variant, or bad flags.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			// Flags are checked before the file is read: a typo should
			// not cost a read of ten million rows.
			if opts.Control == "" {
				return usageErr("--control is required: name the control variant")
			}
			if !(opts.Alpha > 0 && opts.Alpha < 1) {
				return usageErr("--alpha %g: must be in (0, 1)", opts.Alpha)
			}
			if !(opts.Tuning > 0) || math.IsInf(opts.Tuning, 0) {
				return usageErr("--tuning %g: must be a positive number", opts.Tuning)
			}
			var err error
			if opts.Covariates, err = parseCovariates(covariates); err != nil {
				return err
			}
			if opts.Weights, err = parseWeights(weights); err != nil {
				return err
			}
			opts.Metrics = metrics
			tab, err := a.readExpTable(args[0])
			if err != nil {
				return err
			}
			rep, err := abtest.Analyze(tab, opts)
			if err != nil {
				return usageErr("%w", err)
			}
			if a.json() {
				return a.printJSON(rep)
			}
			return a.printExp(rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Control, "control", "", "the control variant (required)")
	f.StringArrayVar(&metrics, "metric", nil, "a metric column to analyze (repeat for more; default all numeric columns)")
	f.StringArrayVar(&covariates, "covariate", nil, "METRIC=PRECOL: compare METRIC by CUPED too, with the pre-experiment column PRECOL (repeatable)")
	f.BoolVar(&opts.Sequential, "sequential", false, "add anytime-valid confidence sequences (Waudby-Smith et al.)")
	f.Float64Var(&opts.Alpha, "alpha", abtest.DefaultAlpha, "significance level: intervals are at 1 − alpha")
	f.Float64Var(&opts.Tuning, "tuning", abtest.DefaultTuning, "tuning N* of the confidence sequences: the sample size where they are tightest")
	f.StringVar(&weights, "weights", "", "the configured split for the SRM check, as A=0.5,B=0.5 (default equal)")
	f.StringVar(&opts.Breakdown, "breakdown", "", "a column to break the analysis down by (market, platform...)")
	f.StringArrayVar(&opts.Segments, "segment", nil, "a column to estimate heterogeneous effects along, with BH-adjusted p-values and Cochran's Q (repeatable)")
	return cmd
}

// parseCovariates reads the --covariate METRIC=PRECOL flags.
func parseCovariates(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	m, err := kv.Parse("--covariate", "METRIC=PRECOL", flags)
	if err != nil {
		return nil, err
	}
	for metric, pre := range m {
		if m[metric] = strings.TrimSpace(pre); m[metric] == "" {
			return nil, usageErr("--covariate %s=: name the pre-experiment column; write METRIC=PRECOL", metric)
		}
	}
	return m, nil
}

// parseWeights reads --weights A=0.5,B=0.5.
func parseWeights(s string) (map[string]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	pairs, err := kv.Parse("--weights", "VARIANT=WEIGHT,VARIANT=WEIGHT...", strings.Split(s, ","))
	if err != nil {
		return nil, err
	}
	m := make(map[string]float64, len(pairs))
	for name, val := range pairs {
		val = strings.TrimSpace(val)
		w, err := strconv.ParseFloat(val, 64)
		if err != nil || !(w > 0) || math.IsInf(w, 0) {
			return nil, usageErr("--weights: %s=%s: the weight must be a positive number", name, val)
		}
		m[name] = w
	}
	return m, nil
}

// readExpTable reads the experiment's CSV; every failure is bad input
// (exit 2).
func (a *app) readExpTable(path string) (*abtest.Table, error) {
	var r io.Reader
	name := path
	if path == "-" {
		r, name = a.in, "stdin"
		if r == nil {
			r = os.Stdin
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErr("%w", err)
		}
		defer f.Close()
		r = f
	}
	t, err := abtest.ReadTable(r, name)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	return t, nil
}

func (a *app) printExp(rep abtest.Report) error {
	srm := "ok"
	if !rep.SRM.OK {
		srm = "MISMATCH"
	}
	fmt.Fprintf(a.out, "%d units, control %q; sample ratio: chi2 %s, p %s, %s\n",
		rep.Units, rep.Control, expNum(rep.SRM.Chi2), expNum(rep.SRM.PValue), srm)
	if !rep.SRM.OK {
		fmt.Fprintf(a.out, "warning: the split does not match the weights (p < %g): the comparisons below are not to be trusted\n", abtest.SRMThreshold)
	}
	fmt.Fprintln(a.out)

	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tVARIANT\tN\tMEAN\tVARIANCE")
	for _, m := range rep.Metrics {
		for _, v := range m.Variants {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", m.Name, v.Name, v.N, expNum(v.Mean), expNum(v.Variance))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.out)

	tw = tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tVARIANT\tMETHOD\tLIFT\tLIFT%\tINTERVAL\tP-VALUE\tSIGNIFICANT")
	for _, m := range rep.Metrics {
		for _, c := range m.Comparisons {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, c.Variant, expComparison(c))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	for _, m := range rep.Metrics {
		if m.Breakdown == nil {
			continue
		}
		fmt.Fprintf(a.out, "\n%s by %s:\n", m.Name, m.Breakdown.Column)
		tw = tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tUNITS\tSRM\tVARIANT\tMETHOD\tLIFT\tLIFT%%\tINTERVAL\tP-VALUE\tSIGNIFICANT\n", strings.ToUpper(m.Breakdown.Column))
		for _, s := range m.Breakdown.Segments {
			value := s.Value
			if value == "" {
				value = "(empty)"
			}
			srm := "ok"
			if !s.SRM.OK {
				srm = "MISMATCH"
			}
			for _, c := range s.Comparisons {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", value, s.Units, srm, c.Variant, expComparison(c))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return a.printSegments(rep)
}

// printSegments prints the heterogeneous effects of --segment.
func (a *app) printSegments(rep abtest.Report) error {
	for _, m := range rep.Metrics {
		for _, h := range m.Segments {
			fmt.Fprintf(a.out, "\n%s by %s (Welch; p-values adjusted by Benjamini–Hochberg across %s values and variants):\n", m.Name, h.Column, h.Column)
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "%s\tVARIANT\tN CONTROL\tN VARIANT\tLIFT\tINTERVAL\tP-VALUE\tP ADJUSTED\tSIGNIFICANT\n", strings.ToUpper(h.Column))
			for _, v := range h.Values {
				value := v.Value
				if value == "" {
					value = "(empty)"
				}
				for _, c := range v.Comparisons {
					sig := "no"
					if c.Significant {
						sig = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t[%s, %s]\t%s\t%s\t%s\n", value, c.Variant, c.NControl, c.NTreatment,
						expNum(c.LiftAbs), expNum(c.CILow), expNum(c.CIHigh), expNum(c.PValue), expNum(c.PAdjusted), sig)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, q := range h.Heterogeneity {
				verdict := "no evidence the effect differs"
				if q.Heterogeneous {
					verdict = "the effect differs between values"
				}
				fmt.Fprintf(a.out, "heterogeneity of %s across %d values: Cochran's Q %s (df %d), p %s, I² %s: %s\n",
					q.Variant, q.Segments, expNum(q.Q), q.DF, expNum(q.PValue), expNum(q.I2), verdict)
			}
		}
	}
	return nil
}

// expComparison is a comparison's columns from METHOD on.
func expComparison(c abtest.Comparison) string {
	rel := "-"
	if !math.IsNaN(c.LiftRel) && !math.IsInf(c.LiftRel, 0) {
		rel = strconv.FormatFloat(100*c.LiftRel, 'f', 2, 64) + "%"
	}
	sig := "no"
	if c.Significant {
		sig = "yes"
	}
	method := c.Method
	if c.Method == abtest.MethodCUPED {
		method += " (theta " + expNum(c.Theta) + ")"
	}
	return fmt.Sprintf("%s\t%s\t%s\t[%s, %s]\t%s\t%s", method, expNum(c.LiftAbs), rel, expNum(c.CILow), expNum(c.CIHigh), expNum(c.PValue), sig)
}

// expNum shows a statistic with four significant digits, "-" when there
// is none.
func expNum(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
