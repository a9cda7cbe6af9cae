package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/dur"
	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/kv"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// expMoreCmds are the experiment commands besides analyze.
func (a *app) expMoreCmds() []*cobra.Command {
	return []*cobra.Command{a.expApplyCmd(), a.expListCmd(), a.expAssignCmd(), a.expIngestCmd(), a.expReportCmd(),
		a.expPromoteCmd(), a.expDecideCmd(), a.expStatusCmd("pause", store.ExperimentPaused), a.expStatusCmd("resume", store.ExperimentRunning),
		a.expStatusCmd("stop", store.ExperimentStopped)}
}

func (a *app) expApplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate experiments and store them (new weights make a new allocation version)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := experiment.ReadFile(args[0])
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
			return printApplied(a, out, func(o experiment.Applied) string {
				return fmt.Sprintf("experiment %s allocation v%d buckets [%d, %d) %s", o.Name, o.Version, o.Range[0], o.Range[1], applyState(o.Changed, "stored"))
			})
		},
	}
}

func (a *app) expListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List experiments with their layer, traffic and status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			ls, err := experiment.Load(cmd.Context(), e.st)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(ls)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EXPERIMENT\tLAYER\tBUCKETS\tVARIANTS\tVERSION\tSTATUS\tREASON")
			for _, l := range ls {
				s := l.Spec.WithDefaults()
				var vs []string
				for _, v := range s.Variants {
					vs = append(vs, fmt.Sprintf("%s=%g", v.Name, v.Weight))
				}
				fmt.Fprintf(tw, "%s\t%s\t[%d,%d)\t%s\t%d\t%s\t%s\n", s.Name, s.Layer, s.Range[0], s.Range[1], strings.Join(vs, ","), l.Version, l.Status, l.Reason)
			}
			return tw.Flush()
		},
	}
}

func (a *app) expAssignCmd() *cobra.Command {
	var attrs []string
	cmd := &cobra.Command{
		Use:   "assign EXPERIMENT UNIT [--attr KEY=VALUE]...",
		Short: "Where a unit is: in or out of the experiment, and which variant (no exposure is logged)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			at, err := kv.Parse("--attr", "KEY=VALUE", attrs)
			if err != nil {
				return err
			}
			m := map[string]any{}
			for k, v := range at {
				m[k] = v
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			if _, err := experiment.Find(cmd.Context(), e.st, args[0]); err != nil {
				return notFound(err)
			}
			// Every experiment, so that a unit outside this one's range
			// is told whose range it is in (if anyone's).
			ls, err := experiment.Load(cmd.Context(), e.st)
			if err != nil {
				return err
			}
			as, err := experiment.NewAssigners(ls)
			if as[args[0]] == nil {
				return err
			}
			return a.printJSON(as[args[0]].Assign(args[1], m))
		},
	}
	cmd.Flags().StringArrayVar(&attrs, "attr", nil, "a unit attribute `KEY=VALUE` for targeting (repeatable)")
	return cmd
}

func (a *app) expIngestCmd() *cobra.Command {
	var exposures, metrics string
	cmd := &cobra.Command{
		Use:   "ingest EXPERIMENT [--exposures FILE] [--metrics FILE]",
		Short: "Record exposures (CSV unit,variant[,at]) and metric events (CSV unit,metric,value[,at])",
		Long: `Records exposures and metric events. Exposures to variants the experiment does
not have, and events of metrics it does not declare, are counted and
rejected with their reason; the rest are stored. Exit 1 when anything was
rejected.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if exposures == "" && metrics == "" {
				return usageErr("give --exposures FILE, --metrics FILE or both")
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			l, err := experiment.Find(ctx, e.st, args[0])
			if err != nil {
				return usageErr("%v: unknown experiments are refused", err)
			}
			out := map[string]experiment.IngestResult{}
			rejected := 0
			if exposures != "" {
				got, err := ingestFile(ctx, "--exposures", exposures, experiment.ReadExposures,
					func(ctx context.Context, es []store.Exposure) (experiment.IngestResult, error) {
						return experiment.IngestExposures(ctx, e.st, l, es, time.Now())
					})
				if err != nil {
					return err
				}
				out["exposures"], rejected = got, rejected+got.Rejected
			}
			if metrics != "" {
				got, err := ingestFile(ctx, "--metrics", metrics, experiment.ReadMetrics,
					func(ctx context.Context, ms []store.MetricEvent) (experiment.IngestResult, error) {
						return experiment.IngestMetrics(ctx, e.st, l, ms, time.Now())
					})
				if err != nil {
					return err
				}
				out["metrics"], rejected = got, rejected+got.Rejected
			}
			if a.json() {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				for k, r := range out {
					fmt.Fprintf(a.out, "%s: %d accepted, %d rejected\n", k, r.Accepted, r.Rejected)
					for _, why := range r.Reasons {
						fmt.Fprintf(a.err, "  %s\n", why)
					}
				}
			}
			if rejected > 0 {
				return errSilentFail
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&exposures, "exposures", "", "CSV of exposures: unit,variant[,at]")
	cmd.Flags().StringVar(&metrics, "metrics", "", "CSV of metric events: unit,metric,value[,at]")
	return cmd
}

func (a *app) expReportCmd() *cobra.Command {
	var html string
	cmd := &cobra.Command{
		Use:   "report EXPERIMENT [--html FILE]",
		Short: "Results so far: per metric and variant, Welch and anytime-valid intervals, and their course over time",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			l, err := experiment.Find(cmd.Context(), e.st, args[0])
			if err != nil {
				return notFound(err)
			}
			rep, err := experiment.BuildReport(cmd.Context(), e.st, l, time.Now())
			if err != nil {
				return err
			}
			if html != "" {
				f, err := os.Create(html)
				if err != nil {
					return usageErr("--html: %v", err)
				}
				if err := rep.HTML(f); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			if a.json() {
				return a.printJSON(rep)
			}
			rep.Text(a.out)
			if html != "" {
				fmt.Fprintf(a.out, "\nwrote %s\n", html)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&html, "html", "", "also write an HTML report with interval-over-time plots")
	return cmd
}

func (a *app) expPromoteCmd() *cobra.Command {
	var variant, better, actor string
	var force bool
	cmd := &cobra.Command{
		Use:   "promote EXPERIMENT --variant NAME",
		Short: "Roll out a winning variant's model version on the experiment's endpoint, citing the experiment's evidence",
		Long: `Moves the winning variant's model version to canary, with a decision record
made of the experiment's evidence (effect, interval, SRM, guardrails) and
the spec's decision: block, and starts a rollout on the experiment's
endpoint. The running server's canary judge then advances it stage by
stage and makes it production only if it passes (baton rollout status).

Refused (exit 2) when the variant has not won on the first metric, the
experiment is paused, or its exposures fail the SRM check; --force
promotes anyway and the transition records what was forced.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if variant == "" {
				return usageErr("--variant is required")
			}
			if better != "increase" && better != "decrease" {
				return usageErr("--better %q: increase or decrease (which way the first metric improves)", better)
			}
			if actor == "" {
				actor = defaultActor()
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			l, err := experiment.Find(ctx, e.st, args[0])
			if err != nil {
				return notFound(err)
			}
			p, err := experiment.Promote(ctx, e.st, l, experiment.PromoteOptions{Variant: variant, Better: better, Actor: actor, Force: force, Now: time.Now()})
			var ie *registry.InputError
			var br *serve.BadRequest
			if errors.As(err, &ie) || errors.As(err, &br) {
				return usageErr("%v", err)
			}
			if err != nil {
				return modelErr(err)
			}
			if len(p.MissingDecision) > 0 {
				fmt.Fprintf(a.err, "warning: the decision record's %s are empty: the experiment spec has no %s\n",
					strings.Join(p.MissingDecision, ", "), strings.Join(p.MissingDecision, ", "))
			}
			if a.json() {
				return a.printJSON(p)
			}
			if len(p.Forced) > 0 {
				fmt.Fprintf(a.out, "FORCED past: %s\n", strings.Join(p.Forced, "; "))
			}
			printPromotion(a.out, p)
			return nil
		},
	}
	cmd.Flags().StringVar(&variant, "variant", "", "the winning variant")
	cmd.Flags().StringVar(&better, "better", "increase", "which way the experiment's first metric improves: increase or decrease")
	cmd.Flags().StringVar(&actor, "actor", "", "who (default $BATON_ACTOR, else the user)")
	cmd.Flags().BoolVar(&force, "force", false, "promote even without a significant win, or when paused or failing the SRM check (recorded as forced)")
	return cmd
}

func printPromotion(w io.Writer, p experiment.Promotion) {
	if p.Rollout.ID == 0 {
		fmt.Fprintf(w, "model %s version %d is now %s (its canary check had passed)\n", p.Version.Model, p.Version.Version, p.Version.State)
		return
	}
	fmt.Fprintf(w, "model %s version %d is now %s; rollout %d started on endpoint %s (stages %v%%), judged by the running server: baton rollout status %s\n",
		p.Version.Model, p.Version.Version, p.Version.State, p.Rollout.ID, p.Rollout.Endpoint, p.Rollout.Stages, p.Rollout.Endpoint)
}

func (a *app) expDecideCmd() *cobra.Command {
	var better, actor, asOf string
	var maxDur, minDur string
	var nonInf float64
	var all bool
	cmd := &cobra.Command{
		Use:   "decide [EXPERIMENT...] [--all]",
		Short: "Ship a winner, keep control, or let each experiment run on",
		Long: `For each named experiment (or, with --all, every running or paused one)
makes the daily call: a treatment that won on the first metric is promoted
(as baton exp promote, with every check it makes) and the experiment stops;
a paused experiment (a guardrail) or one that ran --max-duration without a
winner stops with control kept, and its treatments' canary versions go back
to registered; anything else runs on. Prints one line per experiment (one
JSON array with -o json). Meant for a scheduled or signal-triggered flow step.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usageErr("name experiments or pass --all")
			}
			if better != "increase" && better != "decrease" {
				return usageErr("--better %q: increase or decrease (which way the first metric improves)", better)
			}
			var maxD, minD time.Duration
			for _, f := range []struct {
				flag, v string
				to      *time.Duration
			}{{"--max-duration", maxDur, &maxD}, {"--min-duration", minDur, &minD}} {
				if f.v == "" {
					continue
				}
				d, err := dur.Parse(f.v)
				if err != nil || d <= 0 {
					return usageErr("%s %q: a positive duration such as 7d", f.flag, f.v)
				}
				*f.to = d
			}
			if nonInf < 0 || nonInf >= 1 {
				return usageErr("--non-inferiority %g: a share of control's mean in [0, 1), such as 0.02", nonInf)
			}
			now := time.Now()
			if asOf != "" {
				t, err := parseAsOf(asOf)
				if err != nil {
					return usageErr("--as-of %q: %v", asOf, err)
				}
				now = t
			}
			if actor == "" {
				actor = defaultActor()
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			ls, err := experiment.Load(ctx, e.st)
			if err != nil {
				return err
			}
			var todo []experiment.Loaded
			for _, name := range args {
				l, err := experiment.Find(ctx, e.st, name)
				if err != nil {
					return notFound(err)
				}
				todo = append(todo, l)
			}
			if all {
				for _, l := range ls {
					if l.Status != store.ExperimentStopped {
						todo = append(todo, l)
					}
				}
			}
			out := []experiment.Decision{}
			for _, l := range todo {
				d, err := experiment.Decide(ctx, e.st, l, experiment.DecideOptions{Better: better, MaxDuration: maxD, MinDuration: minD, NonInferiority: nonInf, Actor: actor, Now: now})
				var ie *registry.InputError
				var br *serve.BadRequest
				if errors.As(err, &ie) || errors.As(err, &br) {
					return usageErr("experiment %s: %v", l.Spec.Name, err)
				}
				if err != nil {
					return modelErr(fmt.Errorf("experiment %s: %w", l.Spec.Name, err))
				}
				out = append(out, d)
				if !a.json() {
					fmt.Fprintf(a.out, "%s: %s: %s\n", d.Experiment, d.Outcome, d.Reason)
					if d.Promotion != nil {
						printPromotion(a.out, *d.Promotion)
					}
				}
			}
			if a.json() {
				return a.printJSON(out)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every experiment not stopped")
	cmd.Flags().StringVar(&better, "better", "increase", "which way the experiments' first metric improves: increase or decrease")
	cmd.Flags().StringVar(&maxDur, "max-duration", "", "keep control after this long without a winner, from the first exposure (e.g. 14d); default never")
	cmd.Flags().StringVar(&minDur, "min-duration", "", "ship nothing before this long from the first exposure (e.g. 7d)")
	cmd.Flags().Float64Var(&nonInf, "non-inferiority", 0, "also ship a treatment shown no worse than this share of control's mean on the first metric (e.g. 0.02); default only one shown better")
	cmd.Flags().StringVar(&asOf, "as-of", "", "decide as of this time (RFC 3339 or YYYY-MM-DD), e.g. a backfill's date; default now")
	cmd.Flags().StringVar(&actor, "actor", "", "who (default $BATON_ACTOR, else the user)")
	return cmd
}

// parseAsOf reads an RFC 3339 time or a date (the end of that day, UTC).
func parseAsOf(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time or a YYYY-MM-DD date")
	}
	return d.Add(24*time.Hour - time.Microsecond), nil
}

func (a *app) expStatusCmd(verb string, to store.ExperimentStatus) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " EXPERIMENT --reason WHY",
		Short: map[string]string{"pause": "Pause: every unit gets control", "resume": "Resume a paused experiment", "stop": "Stop for good"}[verb],
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usageErr("--reason is required: say why")
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			x, err := experiment.SetStatus(cmd.Context(), e.st, args[0], to, reason)
			if err != nil {
				return modelErr(err)
			}
			fmt.Fprintf(a.out, "experiment %s is %s\n", x.Name, x.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	return cmd
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// ingestFile reads the records of the file given by flag (the malformed
// ones counted as rejected) and ingests the rest; the result adds both
// rejections. A file that cannot be opened or read is a usage error.
func ingestFile[T any](ctx context.Context, flag, path string, read func(io.Reader, *experiment.IngestResult) ([]T, error),
	ingest func(context.Context, []T) (experiment.IngestResult, error)) (experiment.IngestResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return experiment.IngestResult{}, usageErr("%s: %v", flag, err)
	}
	defer f.Close()
	var res experiment.IngestResult
	recs, err := read(f, &res)
	if err != nil {
		return res, usageErr("%s: %v", path, err)
	}
	got, err := ingest(ctx, recs)
	if err != nil {
		return got, err
	}
	got.Rejected += res.Rejected
	got.Reasons = append(res.Reasons, got.Reasons...)
	for k, n := range res.ByReason {
		if got.ByReason == nil {
			got.ByReason = map[string]int{}
		}
		got.ByReason[k] += n
	}
	return got, nil
}
