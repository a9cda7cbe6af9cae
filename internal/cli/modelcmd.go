package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/kv"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
)

func (a *app) modelCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "The model registry: versions, lineage, lifecycle, aliases"}
	cmd.AddCommand(a.modelRegisterCmd(), a.modelListCmd(), a.modelShowCmd(), a.modelTransitionCmd(), a.modelAliasCmd(), a.modelUpdateCmd())
	return cmd
}

// modelErr maps registry errors to exit codes: bad requests and illegal
// transitions are usage errors (2), missing records exit 1 with the message.
func modelErr(err error) error {
	var ie *registry.InputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie), errors.Is(err, registry.ErrIllegal):
		return usageErr("%v", err)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
		return &exitError{code: exitFailed, err: err}
	}
	return err
}

func defaultActor() string {
	if v := os.Getenv("BATON_ACTOR"); v != "" {
		return v
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// kvFloats reads NAME=NUMBER flags (kv's rule), each value a number.
func kvFloats(flag string, pairs []string) (map[string]float64, error) {
	m, err := kv.Parse(flag, "NAME=NUMBER", pairs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, usageErr("%s %s=%s: the value must be a number; write NAME=NUMBER", flag, k, v)
		}
		out[k] = f
	}
	return out, nil
}

func (a *app) modelRegisterCmd() *cobra.Command {
	var req registry.Register
	var metrics, tags []string
	var publish bool
	var signalFile string
	cmd := &cobra.Command{
		Use:   "register NAME --artifact RUN/STEP/NAME",
		Short: "Register a new version of a model from a run's artifact, with its lineage",
		Long: `Registers the artifact as the model's next version, in state registered, with
its lineage: the run, its flow version and params, the training set
(--training-set) and the feature versions of the features_ready signals those
runs published. --publish publishes model_trained (once per version);
--signal-file writes its params as JSON instead, for a step's publish: list.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if req.Artifact == "" {
				return usageErr("--artifact RUN/STEP/NAME is required: the run artifact holding the model")
			}
			var err error
			if req.Metrics, err = kvFloats("--metric", metrics); err != nil {
				return err
			}
			if req.Tags, err = kv.Parse("--tag", "NAME=VALUE", tags); err != nil {
				return err
			}
			req.Model = args[0]
			if req.Actor == "" {
				req.Actor = defaultActor()
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			reg, err := registry.New(e.st).RegisterAndPublish(ctx, req, publish)
			if err != nil && !errors.Is(err, registry.ErrPublish) {
				return modelErr(err)
			}
			if err != nil {
				return err
			}
			v, sg := reg.Version, reg.Signal
			if signalFile != "" {
				b, _ := json.Marshal(registry.TrainedParams(v))
				if err := os.WriteFile(signalFile, b, 0o644); err != nil {
					return fmt.Errorf("--signal-file: %w", err)
				}
			}
			if a.json() {
				return a.printJSON(reg)
			}
			fmt.Fprintf(a.out, "model %s version %d registered from %s\n", v.Model, v.Version, v.Artifact)
			if sg != nil {
				fmt.Fprintf(a.out, "published model_trained (id %s)\n", sg.ID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Artifact, "artifact", "", "the model artifact: RUN/STEP/NAME or RUN/STEP/INDEX/NAME")
	f.StringVar(&req.TrainingSet, "training-set", "", "the training set artifact it was trained on")
	f.StringArrayVar(&metrics, "metric", nil, "`NAME=NUMBER` (repeatable)")
	f.StringArrayVar(&tags, "tag", nil, "`NAME=VALUE` (repeatable)")
	f.StringVar(&req.Description, "description", "", "what this version is")
	f.StringVar(&req.Actor, "actor", "", "who registers it (default $BATON_ACTOR, else the user)")
	f.StringVar(&req.Reason, "reason", "", "why (default: registered)")
	f.BoolVar(&publish, "publish", false, "publish model_trained")
	f.StringVar(&signalFile, "signal-file", "", "write model_trained's params here as JSON")
	return cmd
}

func (a *app) modelListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List models",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			ms, err := e.st.Models(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(ms)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MODEL\tVERSIONS\tPRODUCTION\tCREATED")
			for _, m := range ms {
				prod := "-"
				if m.Production > 0 {
					prod = strconv.Itoa(m.Production)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.Name, m.Versions, prod, m.CreatedAt.Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
}

func (a *app) modelShowCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "show NAME [VERSION|STATE|ALIAS] [-q]",
		Short: "Show a model's versions, or one version with its lineage and transitions",
		Long: `Show a model's versions, or one version with its lineage and transitions.
With -q only version numbers are printed, one per line (for scripts: the
version a state or alias resolves to; exit 1 when it resolves to none).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			if len(args) == 1 {
				vs, err := e.st.ModelVersions(ctx, args[0])
				if err != nil {
					return modelErr(err)
				}
				if quiet {
					for _, v := range vs {
						fmt.Fprintln(a.out, v.Version)
					}
					return nil
				}
				if a.json() {
					return a.printJSON(vs)
				}
				tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tSTATE\tALIASES\tRUN\tARTIFACT\tMETRICS\tUPDATED")
				for _, v := range vs {
					m, _ := json.Marshal(v.Metrics)
					fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", v.Version, v.State, strings.Join(v.Aliases, ","), v.RunID, v.Artifact, m, v.UpdatedAt.Format(time.DateTime))
				}
				return tw.Flush()
			}
			v, err := registry.New(e.st).Resolve(ctx, args[0], args[1])
			if err != nil {
				return modelErr(err)
			}
			if quiet {
				fmt.Fprintln(a.out, v.Version)
				return nil
			}
			trs, err := e.st.ModelTransitions(ctx, v.Model, v.Version)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"version": v, "transitions": trs})
			}
			fmt.Fprintf(a.out, "model %s version %d: %s\nartifact %s (sha256 %s, %d bytes)\n", v.Model, v.Version, v.State, v.Artifact, v.Digest, v.Size)
			fmt.Fprintf(a.out, "lineage %s\n", v.Lineage)
			// The metrics and tags a flow registered the version with
			// (what judging it needs); they were in -o json only.
			for _, kv := range []struct {
				name string
				m    map[string]string
			}{{"metrics", formatMetrics(v.Metrics)}, {"tags", v.Tags}} {
				if len(kv.m) == 0 {
					continue
				}
				fmt.Fprint(a.out, kv.name)
				for _, k := range slices.Sorted(maps.Keys(kv.m)) {
					fmt.Fprintf(a.out, " %s=%s", k, kv.m[k])
				}
				fmt.Fprintln(a.out)
			}
			for _, t := range trs {
				from := t.From
				if from == "" {
					from = "-"
				}
				fmt.Fprintf(a.out, "  %s  %s → %s by %s: %s\n", t.At.Format(time.DateTime), from, t.To, t.Actor, t.Reason)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only version numbers")
	return cmd
}

func (a *app) modelTransitionCmd() *cobra.Command {
	var actor, reason, decisionFile string
	cmd := &cobra.Command{
		Use:   "transition NAME VERSION STATE --reason WHY",
		Short: "Move a version through registered → shadow → canary → production → archived",
		Long: `Moves a version to another state if the lifecycle allows it:

  registered → shadow, canary, archived
  shadow     → canary, registered, archived
  canary     → production, shadow, registered, archived
  production → archived
  archived   → registered

A version entering production archives the one it replaces. Every transition
records who (--actor), when and why (--reason), and may carry an AI decision
record (--decision FILE: a JSON object with alternatives_considered,
dataset_characteristics, fairness_tradeoffs, expected_lifetime,
retraining_triggers, explainability, regulatory_rationale).`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ver, err := strconv.Atoi(args[1])
			if err != nil || ver <= 0 {
				return usageErr("version %q: a positive number", args[1])
			}
			var d *registry.Decision
			if decisionFile != "" {
				b, err := os.ReadFile(decisionFile)
				if err != nil {
					return usageErr("--decision: %v", err)
				}
				if d, err = registry.ParseDecision(b); err != nil {
					return usageErr("--decision %s: %v", decisionFile, err)
				}
			}
			if actor == "" {
				actor = defaultActor()
			}
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			v, err := registry.New(e.st).Transition(ctx, args[0], ver, store.ModelState(args[2]), actor, reason, d)
			if err != nil {
				return modelErr(err)
			}
			if a.json() {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.out, "model %s version %d is now %s\n", v.Model, v.Version, v.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&actor, "actor", "", "who (default $BATON_ACTOR, else the user)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	cmd.Flags().StringVar(&decisionFile, "decision", "", "an AI decision record (JSON file)")
	return cmd
}

func (a *app) modelAliasCmd() *cobra.Command {
	var del bool
	cmd := &cobra.Command{
		Use:   "alias NAME ALIAS [VERSION]",
		Short: "Point an alias (such as champion) at a version, or --delete it",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ver := 0
			switch {
			case del && len(args) == 2:
			case !del && len(args) == 3:
				n, err := strconv.Atoi(args[2])
				if err != nil || n <= 0 {
					return usageErr("version %q: a positive number", args[2])
				}
				ver = n
			default:
				return usageErr("give NAME ALIAS VERSION, or NAME ALIAS --delete")
			}
			if _, err := strconv.Atoi(args[1]); err == nil || !validAlias(args[1]) {
				return usageErr("alias %q: use letters, digits, _ and -, not a number and not a state name", args[1])
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.st.SetModelAlias(cmd.Context(), args[0], args[1], ver); err != nil {
				return modelErr(err)
			}
			if ver == 0 {
				fmt.Fprintf(a.out, "alias %s of %s deleted\n", args[1], args[0])
			} else {
				fmt.Fprintf(a.out, "%s@%s → version %d\n", args[0], args[1], ver)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&del, "delete", false, "delete the alias")
	return cmd
}

func validAlias(s string) bool {
	for _, st := range registry.States {
		if store.ModelState(s) == st {
			return false
		}
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return s != "" && len(s) <= 100
}

func (a *app) modelUpdateCmd() *cobra.Command {
	var metrics, tags []string
	cmd := &cobra.Command{
		Use:   "update NAME VERSION [--metric NAME=NUMBER]... [--tag NAME=VALUE]...",
		Short: "Add metrics and tags to a version (an empty tag value removes the tag)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ver, err := strconv.Atoi(args[1])
			if err != nil || ver <= 0 {
				return usageErr("version %q: a positive number", args[1])
			}
			m, err := kvFloats("--metric", metrics)
			if err != nil {
				return err
			}
			tg, err := kv.Parse("--tag", "NAME=VALUE", tags)
			if err != nil {
				return err
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			v, err := registry.New(e.st).Update(cmd.Context(), args[0], ver, m, tg)
			if err != nil {
				return modelErr(err)
			}
			if a.json() {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.out, "model %s version %d updated\n", v.Model, v.Version)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&metrics, "metric", nil, "`NAME=NUMBER` (repeatable)")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "`NAME=VALUE` (repeatable)")
	return cmd
}

// formatMetrics writes each metric with the fewest digits that read back
// as the same number.
func formatMetrics(m map[string]float64) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	return out
}
