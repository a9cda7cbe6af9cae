package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/bench"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/home"
)

func (a *app) benchCmd() *cobra.Command {
	cfg := bench.Config{}
	cmd := &cobra.Command{
		Use:   "bench [tasks|shell|triggers|fanout]...",
		Short: "Measure throughput and latency on the embedded store or PostgreSQL",
		Long: `Run reproducible benchmarks in a scratch home (and, with --db postgres://...,
a scratch schema of that database, dropped afterwards):

  tasks     no-op Go tasks through the engine (tasks/s); on PostgreSQL through the
            queue, worked by --procs processes
  shell     tiny shell tasks (tasks/s), each writing one file, like with like:
            baton with --workers workers against as many goroutines running the
            same commands with nothing recorded, and baton with 1 worker against a
            sequential loop; the four sides run interleaved, --rounds times
            (medians), in scratch homes under --dir
  triggers  signal published -> triggered run started (p50, p99)
  fanout    one signal, --fanout subscribing flows (until all started)

Prints a table, or JSON with -o json.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				switch a {
				case "tasks", "shell", "triggers", "fanout":
				default:
					return usageErr("bench %q: choose tasks, shell, triggers or fanout", a)
				}
			}
			cfg.Only = args
			if cfg.Tasks <= 0 || cfg.Shell <= 0 || cfg.Signals <= 0 || cfg.Fanout <= 0 || cfg.Procs <= 0 || cfg.Rate <= 0 || cfg.Rounds <= 0 {
				return usageErr("--tasks, --shell, --signals, --fanout, --rate, --procs and --rounds must be positive")
			}
			if cfg.Workers < 0 {
				return usageErr("--workers must be positive (or 0 for the number of CPUs)")
			}
			h, err := home.Resolve(a.homeDir, a.db)
			if err != nil {
				return usageErr("%v", err)
			}
			if h.Postgres() {
				cfg.DB = h.DB
			}
			if cfg.Exe, err = os.Executable(); err != nil {
				return err
			}
			cfg.Log = a.err
			rs, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(rs)
			}
			return bench.Table(a.out, rs)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Tasks, "tasks", 20000, "no-op Go tasks")
	f.IntVar(&cfg.Shell, "shell", 2000, "tiny shell tasks")
	f.IntVar(&cfg.Signals, "signals", 200, "signals for the latency benchmark")
	f.IntVar(&cfg.Fanout, "fanout", 1000, "subscribing flows for the fan-out benchmark")
	f.IntVar(&cfg.Rate, "rate", 10, "signals a second in the latency benchmark")
	f.IntVar(&cfg.Procs, "procs", 2, "processes working the queue (PostgreSQL)")
	f.IntVar(&cfg.Workers, "workers", 0, "parallel side of the shell benchmark: engine workers and loop goroutines (0: the number of CPUs)")
	f.IntVar(&cfg.Rounds, "rounds", 3, "interleaved rounds of the shell benchmark (medians are reported)")
	f.StringVar(&cfg.Dir, "dir", "", "folder for scratch homes (default: the system's temporary folder, which may be a tmpfs)")
	return cmd
}

// benchWorkerCmd is the child process of `baton bench` on PostgreSQL.
func (a *app) benchWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "bench-worker",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer e.Close()
			eng, err := engine.New(e.st, e.blobs, engine.Options{TempDir: e.home.TempDir(), Env: e.home.Env(),
				Dispatch: engine.Queue})
			if err != nil {
				return err
			}
			defer eng.Close()
			return eng.Work(cmd.Context(), engine.WorkOptions{Funcs: bench.NoopFuncs(),
				Log: slog.New(slog.NewTextHandler(a.err, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		},
	}
}
