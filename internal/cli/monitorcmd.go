package cli

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/monitor"
)

func (a *app) monitorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "monitor", Short: "Monitors that act: feature and prediction drift, online quality, responsible-AI checks, and quality scenarios measured from what happened (docs/monitors.md)"}
	cmd.AddCommand(a.monitorApplyCmd(), a.monitorListCmd(), a.monitorResultsCmd(), a.monitorEvaluateCmd())
	return cmd
}

func (a *app) monitorApplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate a monitors file and store it (the leading server evaluates each monitor on its schedule)",
		Long: `Validate a monitors file and store it. Everything is checked before
anything is stored: the file on its own (unknown keys, fields of another
kind, thresholds), then what it names (features, sources and fields,
models, endpoints, the contract of the signal a breach publishes). Every
problem is reported at once as file:line:column: field: message (exit 2).
An unchanged monitor is left as it is.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := monitor.ReadFile(args[0])
			// A document with problems of its own is still checked against the
			// store, so that every problem is reported at once.
			if doc == nil {
				return err
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			out, err := doc.Apply(cmd.Context(), e.st)
			if err != nil {
				return err
			}
			return printApplied(a, out, func(o monitor.Applied) string {
				return fmt.Sprintf("monitor %s (%s) %s", o.Name, o.Kind, applyState(o.Changed, "stored"))
			})
		},
	}
}

// monitorStatus is a monitor with its newest result, as the API lists it.
type monitorStatus struct {
	Spec monitor.Spec    `json:"spec"`
	Last *monitor.Result `json:"last,omitempty"`
}

func (a *app) monitorListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List monitors with their schedule and newest result",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			specs, err := monitor.Load(cmd.Context(), e.st)
			if err != nil {
				return err
			}
			out := make([]monitorStatus, 0, len(specs))
			for _, s := range specs {
				st := monitorStatus{Spec: s}
				rs, err := monitor.Results(cmd.Context(), e.st, s.Name, 1)
				if err != nil {
					return err
				}
				if len(rs) > 0 {
					st.Last = &rs[0]
				}
				out = append(out, st)
			}
			if a.json() {
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MONITOR\tKIND\tEVERY\tPUBLISH\tLAST EVALUATED\tBREACHED\tERROR")
			for _, s := range out {
				last, breached, errText := "never", "", ""
				if s.Last != nil {
					last, breached, errText = s.Last.EvaluatedAt.Format(time.RFC3339), breachedText(*s.Last), s.Last.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Spec.Name, s.Spec.Kind, s.Spec.Every, orDash(s.Spec.Publish), last, breached, errText)
			}
			return tw.Flush()
		},
	}
}

func (a *app) monitorResultsCmd() *cobra.Command {
	limit := 20
	cmd := &cobra.Command{
		Use:   "results NAME",
		Short: "A monitor's results, newest first: each check's value against its threshold, the signal a breach published",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 1000 {
				return usageErr("--limit %d: from 1 to 1000", limit)
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			if _, err := monitor.Find(cmd.Context(), e.st, args[0]); err != nil {
				return notFound(err)
			}
			rs, err := monitor.Results(cmd.Context(), e.st, args[0], limit)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(rs)
			}
			for i, r := range rs {
				if i > 0 {
					fmt.Fprintln(a.out)
				}
				printResult(a.out, r)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", limit, "how many results, newest first")
	return cmd
}

func (a *app) monitorEvaluateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "evaluate NAME",
		Short: "Evaluate a monitor now, through the running server (its served pages and samples are in its memory)",
		Long: `Evaluate a monitor now, whatever its schedule, through the home's running
server: the pages and answers it served are in its memory. The result is
stored as manual (the schedule's slots are not taken) and a breach
publishes the monitor's signal. Exit 2 when no server runs.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			if _, ok := e.home.RunningServer(); !ok {
				return usageErr("no baton server is running on this home: a monitor is evaluated by the server, whose memory holds the pages and answers it served; start one with baton server (it also evaluates every monitor on its schedule)")
			}
			var res monitor.Result
			if err := a.callServer(cmd.Context(), e, "POST", "/api/v1/monitors/"+url.PathEscape(args[0])+"/evaluate", nil, &res); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(res)
			}
			printResult(a.out, res)
			return nil
		},
	}
}

func breachedText(r monitor.Result) string {
	if !r.Breached {
		return "no"
	}
	var names []string
	for _, c := range r.Breaches() {
		names = append(names, c.Name)
	}
	return "yes: " + strings.Join(names, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printResult writes a result: a line about it, then a line per check.
func printResult(w io.Writer, r monitor.Result) {
	fmt.Fprintf(w, "%s result %d (%s, due %s, evaluated %s): breached %s\n", r.Monitor, r.ID, r.Trigger,
		r.DueAt.Format(time.RFC3339), r.EvaluatedAt.Format(time.RFC3339), breachedText(r))
	if r.Signal != "" {
		fmt.Fprintf(w, "  published %s\n", r.Signal)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHECK\tVALUE\tMIN\tMAX\tJUDGED\tBREACHED\tNOTE")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%v\t%v\t%s\n", c.Name, num(c.Value), num(c.Min), num(c.Max), c.Judged, c.Breached, c.Note)
	}
	tw.Flush()
}

func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'g', 4, 64)
}
