package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/kv"
	"github.com/baton-ml/baton/internal/store"
)

// maxBackfill caps the runs one backfill creates.
const maxBackfill = 1000

func (a *app) backfillCmd() *cobra.Command {
	var from, to, paramName string
	var every time.Duration
	var params []string
	var local bool
	var ef execFlags
	cmd := &cobra.Command{
		Use:   "backfill FLOW --from D1 --to D2",
		Short: "Create a run of a flow for each date in a range",
		Long: `Create one run of a registered flow for each date from --from to --to
(inclusive, every day by default), with the date in the param --param-name
(default "date"). Dates are YYYY-MM-DD (the param gets the same form) or RFC 3339
times (with --every). A running server executes the runs under the flow's
concurrency strategy; --local runs them here, one after another.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := kv.Parse("--param", "NAME=VALUE", params)
			if err != nil {
				return err
			}
			times, layout, err := backfillTimes(from, to, every)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			v, err := e.st.FlowVersion(ctx, args[0], 0)
			if err != nil {
				return notFound(err)
			}
			fl, err := flow.Stored(v.Flow, v.Version, v.Spec)
			if err != nil {
				return err
			}
			if fl.Param(paramName) == nil {
				return usageErr("flow %s has no param %q to hold the date: declare it, or name another with --param-name", fl.Name, paramName)
			}
			if _, dup := given[paramName]; dup {
				return usageErr("--param %s: the backfill sets it", paramName)
			}
			var eng *engine.Engine
			owner := ""
			if local {
				if eng, err = a.engine(e, ef); err != nil {
					return err
				}
				defer eng.Close()
				owner = eng.Owner()
			}
			// Check every date's params before creating any run.
			var all []map[string]json.RawMessage
			for _, t := range times {
				p := map[string]string{paramName: t.Format(layout)}
				for k, v := range given {
					p[k] = v
				}
				resolved, err := fl.ResolveParams(p)
				if err != nil {
					return err
				}
				all = append(all, resolved)
			}
			var runs []store.Run
			for i, t := range times {
				r, err := e.st.CreateRun(ctx, store.NewRun{Flow: fl.Name, FlowVersion: v.Version, Params: all[i],
					Trigger: store.TriggerBackfill, TriggerDetail: paramName + "=" + t.Format(layout), Owner: owner})
				if err != nil {
					return err
				}
				runs = append(runs, r)
			}
			if !local {
				if a.json() {
					return a.printJSON(runs)
				}
				fmt.Fprintf(a.out, "backfill of %s: %d run(s) created, %d to %d", fl.Name, len(runs), runs[0].ID, runs[len(runs)-1].ID)
				if _, ok := e.home.RunningServer(); ok {
					fmt.Fprintln(a.out, "; the server is running them")
				} else {
					fmt.Fprintln(a.out, "; start `baton server` to run them (or use --local)")
				}
				return nil
			}
			failed := 0
			for _, r := range runs {
				if err := a.executeWith(ctx, e, eng, r, ef); err != nil {
					if err != errSilentFail {
						return err
					}
					failed++
				}
				if ctx.Err() != nil {
					break
				}
			}
			if failed > 0 {
				fmt.Fprintf(a.out, "backfill of %s: %d of %d run(s) did not succeed\n", fl.Name, failed, len(runs))
				return errSilentFail
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "first date (YYYY-MM-DD) or time (RFC 3339)")
	f.StringVar(&to, "to", "", "last date or time, inclusive")
	f.DurationVar(&every, "every", 0, "step between times (default: one day)")
	f.StringVar(&paramName, "param-name", "date", "the param that receives each date")
	f.StringArrayVarP(&params, "param", "p", nil, "other run params `NAME=VALUE` (repeatable)")
	f.BoolVar(&local, "local", false, "run them here, one after another, instead of through the server")
	ef.add(cmd)
	return cmd
}

// backfillTimes lists the times from..to and the layout to print them in.
func backfillTimes(from, to string, every time.Duration) ([]time.Time, string, error) {
	if from == "" || to == "" {
		return nil, "", usageErr("--from and --to are required")
	}
	layout := time.DateOnly
	start, err1 := time.Parse(layout, from)
	end, err2 := time.Parse(layout, to)
	if err1 != nil || err2 != nil {
		layout = time.RFC3339
		if start, err1 = time.Parse(layout, from); err1 != nil {
			return nil, "", usageErr("--from %q: write YYYY-MM-DD or an RFC 3339 time", from)
		}
		if end, err2 = time.Parse(layout, to); err2 != nil {
			return nil, "", usageErr("--to %q: write YYYY-MM-DD or an RFC 3339 time", to)
		}
	}
	if end.Before(start) {
		return nil, "", usageErr("--to %s is before --from %s", to, from)
	}
	if every < 0 {
		return nil, "", usageErr("--every %s: must be positive", every)
	}
	var out []time.Time
	for t := start; !t.After(end); {
		out = append(out, t)
		if len(out) > maxBackfill {
			return nil, "", usageErr("the range makes more than %d runs: split it", maxBackfill)
		}
		if every > 0 {
			t = t.Add(every)
		} else {
			t = t.AddDate(0, 0, 1)
		}
	}
	return out, layout, nil
}
