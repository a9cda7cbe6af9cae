package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

func loadRunView(ctx context.Context, st store.Store, id int64) (view.Run, error) {
	v, err := view.LoadRun(ctx, st, id)
	return v, notFound(err)
}

// showOpts are the task-selecting flags of `baton show`.
type showOpts struct {
	all           bool
	step, status  string
	limit, offset int
}

// textLimit is how many tasks per step the text view lists by default:
// enough to see what went wrong, few enough to read.
const textLimit = 20

func (a *app) showCmd() *cobra.Command {
	var so showOpts
	cmd := &cobra.Command{
		Use:   "show RUN_ID",
		Short: "Show a run: its status, params, steps (tasks counted by status) and a page of tasks",
		Long: `Show a run: its status, params, and each step with its tasks counted by status
and their durations. The text view lists the tasks that did not succeed
(failed first) and the task of each one-task step, at most 20 per step;
-o json lists up to 1000 tasks per step in index order. Either way the
counts cover every task, and tasks_truncated (or a closing hint) says when
more can be paged with --offset.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			o, err := so.options(a.json(), cmd.Flags().Changed("limit"))
			if err != nil {
				return err
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			v, err := view.LoadRunWith(cmd.Context(), e.st, id, o)
			if err != nil {
				return notFound(err)
			}
			if a.json() {
				return a.printJSON(v)
			}
			a.printRunView(v, so, o)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&so.all, "tasks", false, "list tasks of every status (default: those that did not succeed, and one-task steps)")
	f.StringVar(&so.step, "step", "", "list only this step's tasks")
	f.StringVar(&so.status, "status", "", "list only tasks with this status (pending, running, succeeded, failed, cancelled, skipped)")
	f.IntVar(&so.limit, "limit", textLimit, "at most this many tasks per step (default 20; 1000 with --tasks or -o json)")
	f.IntVar(&so.offset, "offset", 0, "skip this many of the selected tasks of each step (the next page)")
	return cmd
}

func (so showOpts) options(json, limitSet bool) (view.Options, error) {
	o := view.Options{Step: so.step, Offset: so.offset, Limit: so.limit}
	switch st := store.TaskStatus(so.status); st {
	case "":
	case store.TaskPending, store.TaskRunning, store.TaskSucceeded, store.TaskFailed, store.TaskCancelled, store.TaskSkipped:
		o.Status = st
	default:
		return o, usageErr("--status %q: use pending, running, succeeded, failed, cancelled or skipped", so.status)
	}
	if so.limit < 0 {
		return o, usageErr("--limit %d: must be 0 or more", so.limit)
	}
	if so.offset < 0 {
		return o, usageErr("--offset %d: must be 0 or more", so.offset)
	}
	if !limitSet && (json || so.all) {
		o.Limit = view.DefaultLimit
	}
	if o.Limit == 0 {
		o.Limit = -1 // counts only
	}
	if !json && !so.all && o.Status == "" {
		o.Unsucceeded = true
		o.Single = so.offset == 0 && so.step == ""
	}
	return o, nil
}

func (a *app) showRun(ctx context.Context, e *env, id int64) error {
	v, err := loadRunView(ctx, e.st, id)
	if err != nil {
		return err
	}
	return a.printJSON(v)
}

func roundSeconds(s float64) string {
	if s == 0 {
		return ""
	}
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func (a *app) printRunView(v view.Run, so showOpts, o view.Options) {
	w := a.out
	fmt.Fprintf(w, "run %d  flow %s v%d  %s\n", v.ID, v.Flow, v.FlowVersion, v.Status)
	if v.Code != "" {
		fmt.Fprintf(w, "  code: %s (%s)\n", v.Code[:12], flow.Size(v.CodeSize))
	}
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
			// A summary stays short whatever the params hold: a long
			// value is cut, with its size and where to read it whole.
			if len(p) > maxShownParam {
				p = append(p[:maxShownParam:maxShownParam], fmt.Sprintf("… (%s; baton show -o json has it whole)", flow.Size(int64(len(p))))...)
			}
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
	fmt.Fprintln(tw, "\nSTEP\tSTATUS\tTASKS\tSUCCEEDED\tREUSED\tFAILED\tOTHER\tTOOK\tTASK MEAN\tTASK MAX")
	for _, s := range v.Steps {
		var other []string
		for _, st := range []store.TaskStatus{store.TaskRunning, store.TaskPending, store.TaskCancelled, store.TaskSkipped} {
			if n := s.Counts[st]; n > 0 {
				other = append(other, fmt.Sprintf("%d %s", n, st))
			}
		}
		took := ""
		if !s.StartedAt.IsZero() && !s.FinishedAt.IsZero() && s.Status != store.TaskPending {
			took = s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.Status, s.TasksTotal, s.Counts[store.TaskSucceeded],
			s.Reused, s.Counts[store.TaskFailed], strings.Join(other, ", "), took, roundSeconds(s.TaskMeanSeconds), roundSeconds(s.TaskMaxSeconds))
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	var more []string
	for _, s := range v.Steps {
		for _, t := range s.Tasks {
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
			at := strconv.Itoa(t.Index)
			if len(t.Path) > 1 {
				at = store.FormatPath(t.Path)
			}
			fmt.Fprintf(tw, "%d/%s/%s\t%s\t%d\t%s\t%s\n", v.ID, s.Name, at, t.Status, t.Attempts, exit, note)
		}
		if s.TasksTruncated {
			more = append(more, s.Name)
		}
	}
	tw.Flush()
	for _, name := range more {
		var s view.Step
		for _, x := range v.Steps {
			if x.Name == name {
				s = x
			}
		}
		next := []string{"baton show", fmt.Sprint(v.ID), "--step", name}
		if so.all {
			next = append(next, "--tasks")
		}
		if so.status != "" {
			next = append(next, "--status", so.status)
		}
		if o.Limit > 0 {
			next = append(next, "--offset", fmt.Sprint(s.TasksOffset+len(s.Tasks)))
			if o.Limit != textLimit {
				next = append(next, "--limit", fmt.Sprint(o.Limit))
			}
		} else {
			next = append(next, "--limit", fmt.Sprint(textLimit))
		}
		fmt.Fprintf(w, "step %s: more tasks than listed; next: %s\n", name, strings.Join(next, " "))
	}
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

// maxShownParam is how much of a param's value the text summary shows.
const maxShownParam = 200
