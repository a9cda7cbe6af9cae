package cli

import (
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/drift"
)

func (a *app) driftCmd() *cobra.Command {
	var refPath, curPath string
	var opts drift.Options
	cmd := &cobra.Command{
		Use:   "drift --reference FILE --current FILE",
		Short: "Compare two CSV files for drift, column by column",
		Long: `Compare the columns of a current CSV file with those of a reference one (same
header). A numeric column gets PSI over ten bins cut at the reference's deciles
and the two-sample Kolmogorov–Smirnov test; a string column gets PSI over its
categories and the chi-square test. A column has drifted when its PSI reaches
--psi-threshold or its p-value is below --alpha. Finding drift is not a failure:
the exit code is 0 either way, and 2 for unreadable or mismatched files.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if refPath == "" || curPath == "" {
				return usageErr("--reference and --current are required")
			}
			// Flags are checked before any file is read, so that a typo
			// in them costs nothing on large files.
			if !(opts.PSIThreshold > 0) {
				return usageErr("--psi-threshold %g: must be positive", opts.PSIThreshold)
			}
			if !(opts.Alpha > 0 && opts.Alpha <= 1) {
				return usageErr("--alpha %g: must be in (0, 1]", opts.Alpha)
			}
			ref, err := readDriftTable(refPath)
			if err != nil {
				return err
			}
			cur, err := readDriftTable(curPath)
			if err != nil {
				return err
			}
			rep, err := drift.Compare(ref, cur, opts)
			if err != nil {
				return usageErr("%w", err)
			}
			if a.json() {
				return a.printJSON(rep)
			}
			return a.printDrift(rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&refPath, "reference", "", "CSV file of the reference data (training, last week...)")
	f.StringVar(&curPath, "current", "", "CSV file of the data to check, with the reference's header")
	f.Float64Var(&opts.PSIThreshold, "psi-threshold", drift.DefaultPSIThreshold, "a column with PSI at or above this has drifted")
	f.Float64Var(&opts.Alpha, "alpha", drift.DefaultAlpha, "a column whose test p-value is below this has drifted")
	return cmd
}

// readDriftTable reads a CSV file; every failure is bad input (exit 2).
func readDriftTable(path string) (drift.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return drift.Table{}, usageErr("%w", err)
	}
	defer f.Close()
	t, err := drift.ReadCSV(f, path)
	if err != nil {
		return drift.Table{}, usageErr("%w", err)
	}
	return t, nil
}

func (a *app) printDrift(rep drift.Report) error {
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tTYPE\tPSI\tKS\tP-VALUE\tDRIFTED")
	drifted := 0
	for _, c := range rep.Columns {
		ks := "-"
		if c.KSStatistic != nil {
			ks = driftNum(*c.KSStatistic)
		}
		mark := "no"
		if c.Drifted {
			mark = "yes"
			drifted++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Type, driftNum(c.PSI), ks, driftNum(c.PValue), mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(a.out, "%d of %d columns drifted (%.0f%%)\n", drifted, len(rep.Columns), 100*rep.DriftedShare)
	return err
}

// driftNum shows a statistic with four significant digits: enough to compare
// with a threshold, short enough for a terminal.
func driftNum(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
