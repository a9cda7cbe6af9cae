package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/parquet"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/kv"
	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/server"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/token"
)

func (a *app) serverCmd() *cobra.Command {
	var opt server.Options
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the daemon: triggers, scheduler, executor and HTTP API",
		Long: `Run baton's server: it evaluates triggers (signals, joins, on_finish, cron),
starts triggered runs under each flow's concurrency strategy, executes them, and
serves the JSON API (see /api/v1/openapi.yaml), /healthz and /metrics.
Flows and contracts applied while it runs are picked up within a second.
SIGTERM (or Ctrl-C) stops it gracefully: no new work is taken, running tasks
finish (up to --drain), and unfinished runs are handed back to the next server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			opt.Logger = slog.New(slog.NewTextHandler(a.err, &slog.HandlerOptions{Level: slog.LevelInfo}))
			if e.home.Postgres() {
				// Many servers may share the store: tasks go through its
				// queue and one server (the holder of an advisory lock)
				// leads.
				opt.Dispatch = engine.Queue
				if opt.Elector, err = postgres.NewLeadership(e.home.DB, "server"); err != nil {
					return usageErr("--db: %v", err)
				}
			}
			srv, err := server.New(e.st, e.blobs, e.home, opt)
			if err != nil {
				return err
			}
			if err := srv.Listen(); err != nil {
				return usageErr("%v", err)
			}
			if err := e.home.AnnounceServer(home.Server{Addr: srv.Addr(), PID: os.Getpid(), Started: time.Now()}); err != nil {
				return err
			}
			if u := srv.LoginURL(); u != "" {
				fmt.Fprintf(a.err, "baton server: sign a browser in at %s\n(a one-time link: `baton login` makes another; the CLI on this home needs nothing, it reads %s)\n",
					u, filepath.Join(e.home.Dir, "api.token"))
			} else {
				fmt.Fprintf(a.err, "baton server: accepts stored tokens only (--require-auth): the CLI sends $BATON_TOKEN; a browser signs in at http://%s/login?token=YOUR_TOKEN\n", srv.Addr())
			}
			defer e.home.WithdrawServer()
			return srv.Run(ctx)
		},
	}
	cmd.Flags().SortFlags = false
	f := cmd.Flags()
	f.StringVar(&opt.Addr, "addr", "127.0.0.1:8765", "address of the HTTP API (every address needs a token: the CLI on this home sends one by itself)")
	f.IntVar(&opt.Workers, "workers", 0, "tasks running at once (default: the number of CPUs)")
	f.DurationVar(&opt.Drain, "drain", 30*time.Second, "on SIGTERM, how long running tasks may take to finish")
	f.BoolVar(&opt.RequireAuth, "require-auth", false, "accept only stored tokens (baton token create), not the home's own token")
	f.StringSliceVar(&opt.AllowedHosts, "allowed-host", nil, "host names clients may use to reach the server besides IP addresses and localhost (repeatable)")
	f.StringSliceVar(&opt.AllowedOrigins, "allowed-origin", nil, "web origins (scheme://host:port) besides the server's own whose pages may call the API (repeatable)")
	f.DurationVar(&opt.RunLease, "run-lease", 15*time.Second, "how soon the runs this server coordinates are taken over if it dies")
	f.DurationVar(&opt.TaskLease, "task-lease", 30*time.Second, "how soon the tasks this server runs go elsewhere if it dies")
	f.StringVar(&opt.Online, "online", os.Getenv("BATON_ONLINE"), "features' online store: memory (default) or a redis:// URL (default $BATON_ONLINE)")
	f.StringVar(&opt.NATS, "nats", os.Getenv("BATON_NATS"), "ingest feature events from this NATS JetStream URL, subjects STREAM.SOURCE (default $BATON_NATS)")
	f.StringVar(&opt.NATSStream, "nats-stream", "baton_events", "the JetStream stream of feature events")
	f.StringSliceVar(&opt.Kafka, "kafka", strings.FieldsFunc(os.Getenv("BATON_KAFKA"), func(r rune) bool { return r == ',' || r == ' ' }), "ingest feature events from these Kafka brokers (comma-separated host:port), topics PREFIX.SOURCE, consumer group baton (default $BATON_KAFKA)")
	f.StringVar(&opt.KafkaTopicPrefix, "kafka-prefix", "baton_events", "the prefix of the Kafka topics of feature events")
	return cmd
}

func (a *app) workerCmd() *cobra.Command {
	var workers int
	var drain, lease time.Duration
	var capf capacityFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run tasks from a shared store's queue (no API, no scheduler)",
		Long: `Run tasks of any run from the queue of a PostgreSQL store, on this machine,
so that steps spread over many machines. Each task is leased (renewed while it
runs); if this worker dies, its tasks run elsewhere once the lease expires (30 s).
Artifacts must live in storage every worker reaches: BATON_ARTIFACTS=s3://...
or a file:// path on a shared file system. SIGTERM stops taking tasks, lets
running ones finish (up to --drain) and hands the rest back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			if !e.home.Postgres() {
				return usageErr("baton worker needs a shared store: --db postgres://... (the embedded SQLite store is one process's)")
			}
			eng, err := engine.New(e.st, e.blobs, engine.Options{Workers: workers, TempDir: e.home.TempDir(),
				Env: e.home.Env(), CodeDir: e.home.CodeDir(), Dispatch: engine.Queue, DrainTasks: drain, TaskLeaseTTL: lease,
				TrainingSet: feature.StepFunc(e.st, e.featureDir(), parquet.Write)})
			if err != nil {
				return err
			}
			defer eng.Close()
			capacity, err := capf.capacity()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(a.err, &slog.HandlerOptions{Level: slog.LevelInfo}))
			log.Info("baton worker ready", "owner", eng.Owner(), "artifacts", e.home.Artifacts,
				"cpu", float64(capacity.CPU)/1000, "memory_mib", capacity.Mem, "gpu", capacity.GPU, "labels", store.LabelText(capacity.Labels))
			err = eng.Work(ctx, engine.WorkOptions{Log: log, Capacity: &capacity})
			log.Info("stopped")
			return err
		},
	}
	cmd.Flags().IntVar(&workers, "workers", 0, "tasks running at once (default: the number of CPUs)")
	cmd.Flags().DurationVar(&drain, "drain", 30*time.Second, "on SIGTERM, how long running tasks may take to finish")
	cmd.Flags().DurationVar(&lease, "task-lease", 30*time.Second, "how soon this worker's tasks go elsewhere if it dies")
	capf.register(cmd)
	return cmd
}

func (a *app) signalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "signal", Short: "Publish and inspect signals"}
	var params []string
	var id, paramsJSON string
	publish := &cobra.Command{
		Use:   "publish NAME",
		Short: "Publish a signal; params are checked against its contract (the same --id twice is one signal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			given, err := kv.Parse("--param", "NAME=VALUE", params)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			contracts, err := signal.Load(ctx, e.st)
			if err != nil {
				return err
			}
			var typed map[string]json.RawMessage
			if paramsJSON != "" {
				if len(given) > 0 {
					return usageErr("give params either with --param or with --params-json, not both")
				}
				if err := json.Unmarshal([]byte(paramsJSON), &typed); err != nil {
					return usageErr("--params-json: a JSON object of params: %v", err)
				}
				if typed, err = contracts.Check(name, typed); err != nil {
					return usageErr("%v", err)
				}
			} else if typed, err = contracts.FromText(name, given); err != nil {
				return usageErr("%v", err)
			}
			var out struct {
				Signal  store.Signal `json:"signal"`
				Created bool         `json:"created"`
			}
			// The server publishes and evaluates at once; the store path
			// waits for its next poll, so it is for when none answers.
			c, ok, err := serverClient(e.home)
			if err != nil {
				return err
			}
			if ok {
				err = c.do(ctx, "POST", "/api/v1/signals", map[string]any{"name": name, "id": id, "params": typed}, &out)
			}
			if !ok || errors.Is(err, errUnreachable) {
				out.Signal, out.Created, err = signal.Publish(ctx, e.st, contracts, name, id, typed, store.SignalSource{Kind: store.SourceExternal})
			}
			if err != nil {
				return err
			}
			sg, created := out.Signal, out.Created
			if a.json() {
				return a.printJSON(map[string]any{"signal": sg, "created": created})
			}
			if created {
				fmt.Fprintf(a.out, "signal %s published (id %s)\n", sg.Name, sg.ID)
			} else {
				fmt.Fprintf(a.out, "signal %s already published with id %s: nothing new\n", sg.Name, sg.ID)
			}
			return nil
		},
	}
	publish.Flags().StringArrayVarP(&params, "param", "p", nil, "signal param `NAME=VALUE`, converted to the contract's type (repeatable)")
	publish.Flags().StringVar(&paramsJSON, "params-json", "", "all params as one JSON object")
	publish.Flags().StringVar(&id, "id", "", "the signal's id (default: a new one); publishing an id again is a no-op")
	var name string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List recent signals, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			sigs, err := e.st.Signals(cmd.Context(), store.SignalFilter{Name: name, Limit: limit})
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(sigs)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tNAME\tID\tSOURCE\tCREATED\tPARAMS")
			for _, sg := range sigs {
				src := sg.Source.Kind
				if sg.Source.RunID != 0 {
					src = fmt.Sprintf("%s run %d/%s", sg.Source.Flow, sg.Source.RunID, sg.Source.Step)
				}
				p, _ := json.Marshal(sg.Params)
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", sg.Seq, sg.Name, sg.ID, src, sg.CreatedAt.Format(time.DateTime), p)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&name, "name", "", "only signals of this name")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many")
	cmd.AddCommand(publish, list)
	return cmd
}

func (a *app) lineageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "lineage", Short: "What feeds what: signals, flows and runs, declared and observed"}
	var limit int
	sig := &cobra.Command{
		Use:   "signal NAME",
		Short: "Who publishes and subscribes to a signal, and what its recent signals triggered",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			l, err := lineage.OfSignal(cmd.Context(), e.st, args[0], limit)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(l)
			}
			fmt.Fprintf(a.out, "signal %s\n  publishers: %s\n  subscribers: %s\n", l.Signal, orNone(l.Publishers), orNone(l.Subscribers))
			for _, r := range l.Recent {
				p, _ := json.Marshal(r.Params)
				fmt.Fprintf(a.out, "  %s %s %s -> runs %v\n", r.CreatedAt.Format(time.DateTime), r.ID, p, r.TriggeredRuns)
			}
			return nil
		},
	}
	sig.Flags().IntVar(&limit, "limit", 20, "how many recent signals")
	var up, down bool
	fl := &cobra.Command{
		Use:   "flow NAME",
		Short: "Every flow downstream (--downstream, the default) or upstream of a flow, with the path",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if up && down {
				return usageErr("--upstream and --downstream: choose one")
			}
			dir := lineage.Downstream
			if up {
				dir = lineage.Upstream
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			l, err := lineage.OfFlow(cmd.Context(), e.st, args[0], dir)
			if err != nil {
				return notFound(err)
			}
			if a.json() {
				return a.printJSON(l)
			}
			fmt.Fprintf(a.out, "%s of flow %s: %d flow(s)\n", dir, l.Flow, len(l.Flows))
			for _, r := range l.Flows {
				how := "declared"
				if r.Observed && !r.Declared {
					how = "observed"
				} else if r.Observed {
					how = "declared, observed"
				}
				fmt.Fprintf(a.out, "  %-20s %s  (%s)\n", r.Flow, strings.Join(r.Path, " -> "), how)
			}
			return nil
		},
	}
	fl.Flags().BoolVar(&down, "downstream", false, "flows that depend on it: the blast radius of its failure (default)")
	fl.Flags().BoolVar(&up, "upstream", false, "flows it depends on")
	var ol bool
	run := &cobra.Command{
		Use:   "run RUN_ID",
		Short: "What started a run and what it started; --openlineage prints OpenLineage run events",
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
			if ol {
				evs, err := lineage.OpenLineage(cmd.Context(), e.st, id)
				if err != nil {
					return notFound(err)
				}
				return a.printJSON(evs)
			}
			l, err := lineage.OfRun(cmd.Context(), e.st, id)
			if err != nil {
				return notFound(err)
			}
			if a.json() {
				return a.printJSON(l)
			}
			fmt.Fprintf(a.out, "run %d (%s, %s, %s)\n", l.Run.ID, l.Run.Flow, l.Run.Status, l.Run.Trigger)
			for _, k := range l.Upstream {
				fmt.Fprintf(a.out, "  up %d: %s\n", k.Depth, k.Up())
			}
			for _, k := range l.Downstream {
				fmt.Fprintf(a.out, "  down %d: run %d -[%s]-> run %d (%s, %s)\n", k.Depth, k.From.ID, k.Via, k.To.ID, k.To.Flow, k.To.Status)
			}
			return nil
		},
	}
	run.Flags().BoolVar(&ol, "openlineage", false, "print the run's OpenLineage run events (JSON)")
	cmd.AddCommand(sig, fl, run)
	return cmd
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (viewer, operator, admin)"}
	var name, role string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a token; its secret is printed once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, t, err := token.New(name, store.Role(role))
			if err != nil {
				return usageErr("%v", err)
			}
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.st.CreateToken(cmd.Context(), t); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"token": t, "secret": secret})
			}
			fmt.Fprintf(a.out, "token %s (%s, %s):\n%s\nKeep it: it is not shown again.\n", t.ID, t.Name, t.Role, secret)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "who or what uses the token (required)")
	create.Flags().StringVar(&role, "role", string(store.RoleViewer), "viewer, operator or admin")
	list := &cobra.Command{
		Use:  "list",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			ts, err := e.st.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(ts)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tLAST USED")
			for _, t := range ts {
				used := "never"
				if !t.LastUsed.IsZero() {
					used = t.LastUsed.Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.CreatedAt.Format(time.DateTime), used)
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use:  "delete ID",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			return notFound(e.st.DeleteToken(cmd.Context(), args[0]))
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

func (a *app) cancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN_ID",
		Short: "Cancel a run: a pending one at once, a running one through its owner (within seconds)",
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
			if err := e.st.RequestCancel(cmd.Context(), id, "cancelled with `baton cancel`"); err != nil {
				return notFound(err)
			}
			fmt.Fprintf(a.out, "run %d: cancel requested\n", id)
			return nil
		},
	}
}
