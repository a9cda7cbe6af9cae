package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// callServer sends a JSON request to the home's running server and decodes
// its answer into out. Serving state lives in the server, so these
// commands need one.
func (a *app) callServer(ctx context.Context, e *env, method, path string, body, out any) error {
	c, ok, err := serverClient(e.home)
	if err != nil {
		return err
	}
	if !ok {
		return usageErr("no baton server is running on this home: start one with baton server")
	}
	return c.do(ctx, method, path, body, out)
}

func (a *app) endpointCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "endpoint", Short: "Serving endpoints: which model serves, its gate, fallback and rollout"}
	apply := &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate an endpoints file and store it (a running server picks it up within a second)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := serve.ReadFile(args[0])
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
			return printApplied(a, out, func(o serve.Applied) string {
				return fmt.Sprintf("endpoint %s %s", o.Name, applyState(o.Changed, "stored"))
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "What serves each endpoint (from the store; live figures when a server answers)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			// The store says what serves; a running server adds what only
			// it knows (shadow statistics). No server is not an error.
			st, err := serve.StoredStatuses(cmd.Context(), e.st)
			if err != nil {
				return err
			}
			if _, ok := e.home.RunningServer(); ok {
				var live []serve.Status
				if err := a.callServer(cmd.Context(), e, "GET", "/api/v1/endpoints", nil, &live); err != nil {
					fmt.Fprintf(a.err, "the server did not answer (%v): what the store records\n", err)
				} else {
					st = live
				}
			}
			if a.json() {
				return a.printJSON(st)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ENDPOINT\tMODEL\tPRODUCTION\tCANARY\tSHARE\tSHADOWS\tFALLBACK")
			for _, s := range st {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%g%%\t%v\t%s\n", s.Endpoint, s.Model, s.Production, s.Canary, s.CanaryShare, s.Shadows, s.Fallback)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(apply, list, a.endpointFaultCmd())
	return cmd
}

func (a *app) endpointFaultCmd() *cobra.Command {
	var kind, forDur string
	var percent float64
	var clear bool
	cmd := &cobra.Command{
		Use:   "fault ENDPOINT --kind error|timeout --for 1h [--percent P] | --clear",
		Short: "Make the endpoint's model fail for a while (through the running server), to see the fallback serve",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if clear == (kind != "") {
				return usageErr("give --kind (error or timeout) with --for, or --clear")
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			path := "/api/v1/endpoints/" + url.PathEscape(args[0]) + "/fault"
			if clear {
				if err := a.callServer(cmd.Context(), e, "DELETE", path, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(a.out, "endpoint %s: fault cleared\n", args[0])
				return nil
			}
			var f serve.Fault
			if err := a.callServer(cmd.Context(), e, "PUT", path, map[string]any{"kind": kind, "for": forDur, "percent": percent}, &f); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(f)
			}
			fmt.Fprintf(a.out, "endpoint %s: model fails (%s) for %g%% of units until %s\n", args[0], f.Kind, f.Percent, f.Until.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "error (fails at once) or timeout (no answer within the endpoint's timeout)")
	cmd.Flags().StringVar(&forDur, "for", "", "how long, such as 10m or 1d")
	cmd.Flags().Float64Var(&percent, "percent", 100, "share of units hit")
	cmd.Flags().BoolVar(&clear, "clear", false, "clear the endpoint's fault")
	return cmd
}

func (a *app) rolloutCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Progressive rollouts: canary against production, judged each interval"}
	start := &cobra.Command{
		Use:   "start ENDPOINT",
		Short: "Roll the model's canary version out in stages (1% → 5% → 25% → 50% → 100% by default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			var r store.Rollout
			if err := a.callServer(cmd.Context(), e, "POST", "/api/v1/endpoints/"+url.PathEscape(args[0])+"/rollouts", nil, &r); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(r)
			}
			fmt.Fprintf(a.out, "rollout %d: %s version %d against version %d, stages %v%%\n", r.ID, r.Model, r.CanaryVersion, r.BaselineVersion, r.Stages)
			return nil
		},
	}
	var reason string
	abort := &cobra.Command{
		Use:   "abort ENDPOINT --reason WHY",
		Short: "Abort the endpoint's running rollout: its canary version goes back to registered",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			var r store.Rollout
			if err := a.callServer(cmd.Context(), e, "POST", "/api/v1/endpoints/"+url.PathEscape(args[0])+"/rollouts/abort", map[string]any{"reason": reason}, &r); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(r)
			}
			fmt.Fprintf(a.out, "rollout %d: %s version %d back to registered\n", r.ID, r.Model, r.CanaryVersion)
			return nil
		},
	}
	abort.Flags().StringVar(&reason, "reason", "", "why (required)")
	status := &cobra.Command{
		Use:   "status ENDPOINT",
		Short: "An endpoint's rollouts and every evaluation they made",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			rs, err := e.st.Rollouts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(rs)
			}
			for _, r := range rs {
				fmt.Fprintf(a.out, "rollout %d: %s version %d against %d, %s at stage %d of %v%%\n", r.ID, r.Model, r.CanaryVersion, r.BaselineVersion, r.Status, r.Stage, r.Stages)
				var hist []serve.Step
				if len(r.History) > 0 {
					if err := json.Unmarshal(r.History, &hist); err != nil {
						return fmt.Errorf("rollout %d: its stored history is corrupt: %w", r.ID, err)
					}
				}
				for _, h := range hist {
					fmt.Fprintf(a.out, "  %s  %g%%  %s score %.2f (%d canary, %d baseline): %s %s\n", h.At.Format(time.TimeOnly), h.Share, h.Result, h.Score, h.Canary, h.Baseline, h.Action, h.Detail)
				}
			}
			return nil
		},
	}
	cmd.AddCommand(start, abort, status)
	return cmd
}

func (a *app) predictCmd() *cobra.Command {
	var req serve.Request
	var features, attributes string
	cmd := &cobra.Command{
		Use:   "predict ENDPOINT --key KEY | --query TEXT",
		Short: "Ask the running server's endpoint for a prediction (and see which path served it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if features != "" {
				if err := json.Unmarshal([]byte(features), &req.Features); err != nil {
					return usageErr("--features: a JSON object: %v", err)
				}
			}
			if attributes != "" {
				if err := json.Unmarshal([]byte(attributes), &req.Attributes); err != nil {
					return usageErr("--attributes: a JSON object: %v", err)
				}
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			var resp serve.Response
			if err := a.callServer(cmd.Context(), e, "POST", "/api/v1/predict/"+args[0], req, &resp); err != nil {
				return err
			}
			return a.printJSON(resp)
		},
	}
	cmd.Flags().StringVar(&req.Key, "key", "", "the entity key")
	cmd.Flags().StringVar(&req.Unit, "unit", "", "the unit the canary share is decided on (default: the key)")
	cmd.Flags().StringVar(&features, "features", "", "features as a JSON object, instead of the online store's")
	cmd.Flags().StringVar(&attributes, "attributes", "", `the unit's attributes (experiments' targeting, a recommend page's market), a JSON object ({"market":"US"})`)
	cmd.Flags().StringVar(&req.Query, "query", "", "what a search endpoint searches for (--key: the member, optional)")
	return cmd
}
