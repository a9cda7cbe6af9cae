package cli

import (
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	platform "github.com/baton-ml/baton/examples/platform"
	"github.com/baton-ml/baton/internal/demo"
	"github.com/baton-ml/baton/internal/home"
)

func (a *app) demoCmd() *cobra.Command {
	var o demo.Options
	var seed uint64
	var serveAddr, report string
	cmd := &cobra.Command{
		Use:   "demo [--days N] [--members N] [--titles N] [--seed S] [--home DIR | --db DSN] [--report FILE.html] [--serve HOST:PORT] [-o json]",
		Short: "Run the reference streaming platform on simulated members, end to end, in a new home",
		Long: `Simulates a streaming service's members, in several markets, watching titles
day by day, in a closed loop with a baton server started in this process on a
simulated clock: pages from the home endpoint, events into the streaming
features, a partition landing each night, and the signal chain of the
reference platform (examples/platform, copied into HOME/platform and applied
as baton flow/feature/endpoint apply do): data_landed → features_ready →
training → model_trained → canary check → canary_passed → A/B test →
promotion, with guardrails and the daily decision. Episodes: a model outage,
a catalog expansion, a market launch and a candidate with an injected
regression. Prints a line a day, then a summary (with -o json, one JSON
object last on stdout). The home keeps everything: baton runs, baton signal
list, baton model list, baton docs show what happened. With --serve the
server and its web UI stay up afterwards until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := home.Resolve(a.homeDir, a.db)
			if err != nil {
				return usageErr("%v", err)
			}
			o.Home, o.Seed, o.Platform, o.Addr, o.Report = h, seed, platform.Files, serveAddr, report
			if !a.json() {
				o.Progress = a.err
			}
			if report != "" && !strings.HasSuffix(report, ".html") {
				return usageErr("--report %q: an .html file", report)
			}
			if err := o.Validate(); err != nil {
				return usageErr("%v", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			var after func(addr, login string, s demo.Summary) error
			if serveAddr != "" {
				after = func(addr, login string, s demo.Summary) error {
					a.printDemo(s)
					fmt.Fprintf(a.err, "\nbaton demo: the server stays up at http://%s (sign a browser in at %s); Ctrl-C stops it\n", addr, login)
					<-ctx.Done()
					return nil
				}
			}
			fmt.Fprintf(a.err, "baton demo: %d days, %d members, %d titles, seed %d, home %s\n", o.Days, o.Members, o.Titles, seed, h.Dir)
			s, err := demo.Run(ctx, o, after)
			if err != nil {
				return err
			}
			if serveAddr == "" {
				a.printDemo(s)
			}
			if report != "" {
				fmt.Fprintf(a.err, "wrote %s\n", report)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Days, "days", 30, "simulated days")
	f.IntVar(&o.Members, "members", 1500, "members (a fifth join when their market launches)")
	f.IntVar(&o.Titles, "titles", 800, "titles at the start (500 more arrive with the catalog expansion)")
	f.Uint64Var(&seed, "seed", 1, "the simulation's seed: the same seed and flags give the same summary")
	f.BoolVar(&o.Monitors, "monitors", true, "apply the platform's monitors.yaml: drift, online quality and responsible-AI monitors; a drift breach retrains (--monitors=false leaves them out)")
	f.StringVar(&serveAddr, "serve", "", "keep the server and web UI up at HOST:PORT after the demo")
	f.StringVar(&report, "report", "", "also write an HTML report with plots (engagement by day and arm, fallback rate, quality by market, each experiment's interval over time)")
	return cmd
}

func (a *app) printDemo(s demo.Summary) {
	if a.json() {
		_ = a.printJSON(s)
		return
	}
	s.Print(a.out)
}
