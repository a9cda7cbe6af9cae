package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/online"
	"github.com/baton-ml/baton/internal/feature/parquet"
	"github.com/baton-ml/baton/internal/kv"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

func (a *app) featureCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "feature", Short: "Feature definitions, event ingest, online values and training sets"}
	cmd.AddCommand(a.featureApplyCmd(), a.featureListCmd(), a.featureIngestCmd(), a.featureGetCmd(),
		a.featureTrainingSetCmd(), a.featureConsistencyCmd(), a.featureBackfillCmd())
	return cmd
}

// featureDir is where a home keeps event logs and dead letters.
func (e *env) featureDir() string { return filepath.Join(e.home.Dir, "features") }

// openEngine opens the feature engine over the online store url names
// (online.Open; default $BATON_ONLINE, else the embedded store).
func (a *app) openEngine(ctx context.Context, e *env, url string) (*feature.Engine, error) {
	cat, err := feature.Load(ctx, e.st)
	if err != nil {
		return nil, err
	}
	if url == "" {
		url = os.Getenv("BATON_ONLINE")
	}
	onlineStore, err := online.Open(ctx, url)
	if err != nil {
		return nil, usageErr("--online: %v", err)
	}
	eng := feature.NewEngine(cat, e.featureDir(), onlineStore, nil)
	// The embedded store starts empty: the log is its persistence. A
	// store that outlives the process (Redis) holds what the log holds, so
	// a command starts at the log's end: the server applies what a killed
	// ingest left between fsync and Redis when it starts.
	start := eng.Replay
	if online.Persistent(onlineStore) {
		start = eng.SkipToEnd
	}
	if err := start(ctx); err != nil {
		eng.Close()
		return nil, err
	}
	return eng, nil
}

func (a *app) featureApplyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate feature definitions and register them (a change makes a new version)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr("cannot read the feature file: %v", err)
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			// Definitions may refer to registered entities and sources.
			cat, err := feature.Load(ctx, e.st)
			if err != nil {
				return err
			}
			d, err := feature.ParseWith(args[0], data, cat.Defs())
			if err != nil {
				return err
			}
			out, err := feature.Apply(ctx, e.st, args[0], d)
			if err != nil {
				return err
			}
			return printApplied(a, out, func(o feature.Applied) string {
				return fmt.Sprintf("%s %s v%d %s", o.Kind, o.Name, o.Version, applyState(o.New, "registered"))
			})
		},
	}
}

func (a *app) featureListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the registered entities, sources and features, newest versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			specs, err := e.st.FeatureSpecs(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(specs)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tNAME\tVERSION\tCREATED\tSPEC")
			for _, s := range specs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.Kind, s.Name, s.Version, s.CreatedAt.Format(time.DateTime), s.Spec)
			}
			return tw.Flush()
		},
	}
}

func (a *app) featureIngestCmd() *cobra.Command {
	var online string
	cmd := &cobra.Command{
		Use:   "ingest SOURCE FILE",
		Short: "Append events (CSV with a header, or JSON lines; - for stdin) to a source's log and the online store",
		Long: `Appends events to the source's event log and applies them to the online
store as the streaming path does. Malformed events (a missing key, an
unparseable timestamp, a wrong type) are rejected with a reason, counted and
kept in HOME/features/deadletter/SOURCE.deadletter.jsonl; the rest proceed.
The exit code is 0 when every event was accepted, 1 when some were rejected.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var in io.Reader = a.in
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return usageErr("events file: %v", err)
				}
				defer f.Close()
				in = f
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			cat, err := feature.Load(ctx, e.st)
			if err != nil {
				return err
			}
			if cat.Sources[args[0]] == nil {
				return usageErr("unknown source %q; baton feature list shows the registered ones", args[0])
			}
			eng, err := a.openEngine(ctx, e, online)
			if err != nil {
				return err
			}
			defer eng.Close()
			res, err := eng.Ingest(ctx, args[0], in)
			if err != nil {
				return usageErr("%s: %v", args[1], err)
			}
			if a.json() {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.out, "%s: %d accepted, %d rejected, %d late\n", res.Source, res.Accepted, res.Rejected, res.Late)
				for _, r := range res.Errors {
					fmt.Fprintf(a.err, "  line %d: %s\n", r.Line, r.Reason)
				}
			}
			if res.Rejected > 0 {
				return errSilentFail
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&online, "online", "", "online store: memory (default) or a redis:// URL (default $BATON_ONLINE)")
	return cmd
}

func (a *app) featureGetCmd() *cobra.Command {
	var names []string
	var at, online string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Online feature values for one entity key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := atTime(at)
			if err != nil {
				return err
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			eng, err := a.openEngine(ctx, e, online)
			if err != nil {
				return err
			}
			defer eng.Close()
			feats, err := eng.Catalog().Select(names)
			if err != nil {
				return err
			}
			v, err := eng.Get(ctx, args[0], feats, t)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(v)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "FEATURE\tVERSION\tVALUE\t(key %s as of %s)\n", v.Key, v.AsOf.Format(time.RFC3339))
			for _, f := range feats {
				b, _ := json.Marshal(v.Features[f.Name])
				fmt.Fprintf(tw, "%s\t%d\t%s\t\n", f.Name, v.Versions[f.Name], b)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringArrayVar(&names, "feature", nil, "a feature to read (repeatable; default: all)")
	cmd.Flags().StringVar(&at, "at", "", "the time to read the values at (RFC 3339 or unix seconds; default: now)")
	cmd.Flags().StringVar(&online, "online", "", "online store: memory (default) or a redis:// URL (default $BATON_ONLINE)")
	return cmd
}

// keyColumns reads --key ENTITY=COLUMN flags (kv's rule); a column is
// named.
func keyColumns(pairs []string) (map[string]string, error) {
	out, err := kv.Parse("--key", "ENTITY=COLUMN", pairs)
	if err != nil {
		return nil, err
	}
	for k, v := range out {
		if v == "" {
			return nil, usageErr("--key %s=: name the labels column; write ENTITY=COLUMN", k)
		}
	}
	return out, nil
}

func (a *app) featureTrainingSetCmd() *cobra.Command {
	var labelsPath, out, timeCol, signalFile, publish, date string
	var names, keys []string
	cmd := &cobra.Command{
		Use:   "training-set --labels FILE --out FILE",
		Short: "Build a point-in-time-correct training set (CSV or Parquet) and check its quality gates",
		Long: `For each label row (entity key, label time, any other columns) adds each
feature's value as of that row's time: only events with
time - window < event time <= time count. The output is CSV or Parquet by
its extension, written whole or not at all.

Each feature's quality gates run on the result. A gate with action block
that fails makes the command exit 1 with a report: no output is written and
nothing is published. With --publish features_ready (and --date), a passed
computation publishes the signal with feature_version, row_count and the
quality metrics; --signal-file writes the same params as JSON for a flow
step's publish: list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if labelsPath == "" {
				return usageErr("--labels FILE is required: the CSV of entity keys and label times")
			}
			kc, err := keyColumns(keys)
			if err != nil {
				return err
			}
			if publish != "" && date == "" {
				return usageErr("--publish needs --date: the signal's date param")
			}
			f, err := os.Open(labelsPath)
			if err != nil {
				return usageErr("--labels: %v", err)
			}
			labels, err := feature.ReadLabels(f, labelsPath, timeCol)
			f.Close()
			if err != nil {
				return err
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			cat, err := feature.Load(ctx, e.st)
			if err != nil {
				return err
			}
			feats, err := cat.Select(names)
			if err != nil {
				return err
			}
			var contracts signal.Contracts
			if publish != "" {
				if contracts, err = signal.Load(ctx, e.st); err != nil {
					return err
				}
				if _, err := contracts.Check(publish, nil); errors.Is(err, signal.ErrNoContract) {
					return usageErr("--publish %s: %v", publish, err)
				}
			}
			built, err := feature.Build(ctx, e.st, cat, filepath.Join(e.featureDir(), "log"), feature.BuildOptions{
				Labels: labels, Features: feats, KeyCols: kc, Out: out, Parquet: parquet.Write})
			if errors.Is(err, feature.ErrBlocked) {
				if a.json() {
					_ = a.printJSON(built)
				}
				return &exitError{code: exitFailed, err: err}
			}
			if err != nil {
				return err
			}
			var dateJSON json.RawMessage
			if date != "" {
				dateJSON = mustJSON(date)
			}
			params := built.ReadyParams(dateJSON)
			if signalFile != "" {
				b, _ := json.Marshal(params)
				if err := os.WriteFile(signalFile, b, 0o644); err != nil {
					return fmt.Errorf("--signal-file: %w", err)
				}
			}
			var sg *store.Signal
			if publish != "" {
				s, _, err := signal.Publish(ctx, e.st, contracts, publish, "", params, store.SignalSource{Kind: store.SourceExternal})
				if err != nil {
					return usageErr("publish %s: %v", publish, err)
				}
				sg = &s
			}
			if a.json() {
				return a.printJSON(map[string]any{"computation": built.Computation, "report": built.Report, "out": built.Out,
					"feature_version": built.FeatureVersion, "signal": sg})
			}
			fmt.Fprint(a.out, built.Report.Text())
			if built.Out != "" {
				fmt.Fprintf(a.out, "wrote %s: %d rows, features %s (computation %d)\n", built.Out, built.Report.Rows, built.FeatureVersion, built.Computation.ID)
			}
			if sg != nil {
				fmt.Fprintf(a.out, "published %s (id %s)\n", sg.Name, sg.ID)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&labelsPath, "labels", "", "labels CSV: entity key column(s), a label-time column, any others")
	fl.StringVar(&out, "out", "", "output file, .csv or .parquet (default: check only, write nothing)")
	fl.StringArrayVar(&names, "feature", nil, "a feature to compute (repeatable; default: all)")
	fl.StringVar(&timeCol, "time", "", "the labels' time column (default: timestamp, ts or time)")
	fl.StringArrayVar(&keys, "key", nil, "`ENTITY=COLUMN`: the labels column holding an entity's key (default: the entity's key name)")
	fl.StringVar(&publish, "publish", "", "a signal to publish when the computation passes, such as features_ready")
	fl.StringVar(&date, "date", "", "the date param of the published signal")
	fl.StringVar(&signalFile, "signal-file", "", "write the signal params as JSON here (for a step's publish: list)")
	return cmd
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func (a *app) featureConsistencyCmd() *cobra.Command {
	var sample int
	var at, online string
	var names []string
	cmd := &cobra.Command{
		Use:   "consistency",
		Short: "Sample online values, recompute them on the batch path, and report the mismatch rate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			t, err := atTime(at)
			if err != nil {
				return err
			}
			if sample <= 0 {
				return usageErr("--sample %d: sample at least one key", sample)
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			eng, err := a.openEngine(ctx, e, online)
			if err != nil {
				return err
			}
			defer eng.Close()
			feats, err := eng.Catalog().Select(names)
			if err != nil {
				return err
			}
			rep, err := feature.Consistency(ctx, eng, feats, sample, t)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(rep)
			}
			fmt.Fprintf(a.out, "%d values of %d keys compared at %s: %d mismatched (rate %.4f)\n",
				rep.Compared, rep.Keys, rep.At.Format(time.RFC3339), rep.Mismatched, rep.MismatchRate)
			sort.Slice(rep.Examples, func(i, j int) bool { return rep.Examples[i].Key < rep.Examples[j].Key })
			for _, m := range rep.Examples {
				fmt.Fprintf(a.out, "  %s %s: online %v, batch %v\n", m.Key, m.Feature, m.Online, m.Batch)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&sample, "sample", 1000, "how many keys to sample")
	cmd.Flags().StringVar(&at, "at", "", "the time to compare at (default: now)")
	cmd.Flags().StringArrayVar(&names, "feature", nil, "a feature to compare (repeatable; default: all)")
	cmd.Flags().StringVar(&online, "online", "", "online store: memory (default) or a redis:// URL (default $BATON_ONLINE)")
	return cmd
}

func (a *app) featureBackfillCmd() *cobra.Command {
	var from, to, out string
	var every time.Duration
	var names []string
	cmd := &cobra.Command{
		Use:   "backfill --from TIME --to TIME --out FILE",
		Short: "Compute features for every key at every step of a time range (snapshots), on the batch path",
		Long: `Computes each feature, point-in-time correct, for every key of the features'
entity that has events, at each time from --from to --to in steps of
--every: a table of historical values, as a new feature version needs
before a model can train on it. Quality gates run as for a training set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if from == "" || to == "" || out == "" {
				return usageErr("--from, --to and --out are required")
			}
			f, err := feature.ParseTime(from)
			if err != nil {
				return usageErr("--from: %v", err)
			}
			tt, err := feature.ParseTime(to)
			if err != nil {
				return usageErr("--to: %v", err)
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			cat, err := feature.Load(ctx, e.st)
			if err != nil {
				return err
			}
			feats, err := cat.Select(names)
			if err != nil {
				return err
			}
			logDir := filepath.Join(e.featureDir(), "log")
			labels, err := feature.BackfillLabels(cat, logDir, feats, time.UnixMicro(f), time.UnixMicro(tt), every)
			if err != nil {
				return err
			}
			built, err := feature.Build(ctx, e.st, cat, logDir, feature.BuildOptions{Labels: labels, Features: feats, Out: out, Kind: "backfill", Parquet: parquet.Write})
			if errors.Is(err, feature.ErrBlocked) {
				return &exitError{code: exitFailed, err: err}
			}
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(built)
			}
			fmt.Fprint(a.out, built.Report.Text())
			fmt.Fprintf(a.out, "wrote %s: %d rows, features %s (computation %d)\n", built.Out, built.Report.Rows, built.FeatureVersion, built.Computation.ID)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "the first time (RFC 3339 or unix seconds)")
	fl.StringVar(&to, "to", "", "the last time (inclusive)")
	fl.DurationVar(&every, "every", 24*time.Hour, "the step between times")
	fl.StringVar(&out, "out", "", "output file, .csv or .parquet")
	fl.StringArrayVar(&names, "feature", nil, "a feature to compute (repeatable; default: all, which must share one entity)")
	return cmd
}

// atTime reads an --at flag: RFC 3339 or unix seconds, default now.
func atTime(at string) (time.Time, error) {
	if at == "" {
		return time.Now(), nil
	}
	us, err := feature.ParseTime(at)
	if err != nil {
		return time.Time{}, usageErr("--at: %v", err)
	}
	return time.UnixMicro(us), nil
}
