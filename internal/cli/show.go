package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

func loadRunView(ctx context.Context, st store.Store, id int64) (view.Run, error) {
	v, err := view.LoadRun(ctx, st, id)
	return v, notFound(err)
}

func (a *app) showCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "show RUN_ID",
		Short: "Show a run: its status, params, steps and tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			if a.json() {
				return a.showRun(cmd.Context(), e, id)
			}
			v, err := loadRunView(cmd.Context(), e.st, id)
			if err != nil {
				return err
			}
			a.printRunView(v, all)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "tasks", false, "list every task (default: only tasks that did not succeed, and steps with one task)")
	return cmd
}

func (a *app) showRun(ctx context.Context, e *env, id int64) error {
	v, err := loadRunView(ctx, e.st, id)
	if err != nil {
		return err
	}
	return a.printJSON(v)
}

func (a *app) printRunView(v view.Run, all bool) {
	w := a.out
	fmt.Fprintf(w, "run %d  flow %s v%d  %s\n", v.ID, v.Flow, v.FlowVersion, v.Status)
	fmt.Fprintf(w, "  trigger: %s", v.Trigger)
	if v.TriggerDetail != "" {
		fmt.Fprintf(w, " (%s)", v.TriggerDetail)
	}
	fmt.Fprintln(w)
	if !v.StartedAt.IsZero() {
		end := v.FinishedAt
		if end.IsZero() {
			end = time.Now()
		}
		fmt.Fprintf(w, "  started: %s  took: %s\n", v.StartedAt.Format(time.DateTime), end.Sub(v.StartedAt).Round(time.Millisecond))
	}
	if len(v.Params) > 0 {
		var ps []string
		for k, p := range v.Params {
			ps = append(ps, k+"="+string(p))
		}
		fmt.Fprintf(w, "  params: %s\n", strings.Join(slices.Sorted(slices.Values(ps)), " "))
	}
	if len(v.Tags) > 0 {
		fmt.Fprintf(w, "  tags: %s\n", strings.Join(v.Tags, ", "))
	}
	if v.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", v.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTEP\tSTATUS\tTASKS\tSUCCEEDED\tREUSED\tFAILED\tTOOK")
	for _, s := range v.Steps {
		var ok, reused, bad int
		for _, t := range s.Tasks {
			switch {
			case t.Reused:
				reused++
				ok++
			case t.Status == store.TaskSucceeded:
				ok++
			case t.Status == store.TaskFailed:
				bad++
			}
		}
		took := ""
		if !s.StartedAt.IsZero() && !s.FinishedAt.IsZero() && s.Status != store.TaskPending {
			took = s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.Status, len(s.Tasks), ok, reused, bad, took)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	for _, s := range v.Steps {
		for _, t := range s.Tasks {
			if !all && len(s.Tasks) > 1 && t.Status == store.TaskSucceeded {
				continue
			}
			if !header {
				fmt.Fprintln(tw, "\nTASK\tSTATUS\tATTEMPTS\tEXIT\tNOTE")
				header = true
			}
			exit := ""
			if t.ExitCode != nil {
				exit = fmt.Sprint(*t.ExitCode)
			}
			note := t.Error
			if t.Reused {
				note = "reused from " + t.ReusedFrom
			}
			fmt.Fprintf(tw, "%d/%s/%d\t%s\t%d\t%s\t%s\n", v.ID, s.Name, t.Index, t.Status, t.Attempts, exit, note)
		}
	}
	tw.Flush()
}

// runSummary is one line of `baton runs -o json`.
type runSummary struct {
	store.Run
	Duration float64 `json:"duration_seconds,omitempty"`
}

func (a *app) runsCmd() *cobra.Command {
	var f store.RunFilter
	var status string
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch st := store.RunStatus(status); st {
			case "", store.RunPending, store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled:
				f.Status = st
			default:
				return usageErr("--status %q: use pending, running, succeeded, failed or cancelled", status)
			}
			if f.Limit < 0 {
				return usageErr("--limit %d: must be positive", f.Limit)
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			runs, err := e.st.Runs(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.json() {
				out := make([]runSummary, len(runs))
				for i, r := range runs {
					out[i] = runSummary{Run: r}
					if !r.FinishedAt.IsZero() {
						out[i].Duration = r.FinishedAt.Sub(r.StartedAt).Seconds()
					}
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tFLOW\tVERSION\tSTATUS\tTRIGGER\tCREATED\tTOOK\tTAGS")
			for _, r := range runs {
				took := ""
				if !r.FinishedAt.IsZero() {
					took = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Flow, r.FlowVersion, r.Status, r.Trigger,
					r.CreatedAt.Format(time.DateTime), took, strings.Join(r.Tags, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&f.Flow, "flow", "", "only runs of this flow")
	cmd.Flags().StringVar(&status, "status", "", "only runs with this status")
	cmd.Flags().StringVar(&f.Tag, "tag", "", "only runs with this tag")
	cmd.Flags().IntVar(&f.Limit, "limit", 50, "at most this many runs")
	return cmd
}
