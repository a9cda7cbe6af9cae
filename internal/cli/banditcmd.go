package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/bandit"
	"github.com/baton-ml/baton/internal/kv"
)

func (a *app) banditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bandit",
		Short: "The personalization bandit: row order and artwork, trained and judged from logs",
		Long: `A contextual bandit (LinUCB with ε-exploration) that orders a page's rows and
chooses each title's artwork per member context, logging the exact probability
of every choice so that a new policy can be evaluated off-policy before it
serves. See docs/models.md, "Personalization bandit".`,
	}
	cmd.AddCommand(a.banditSimulateCmd(), a.banditTrainCmd(), a.banditEvaluateCmd(), a.banditDecideCmd())
	return cmd
}

func (a *app) banditSimulateCmd() *cobra.Command {
	var seed uint64
	var pages, titles int
	var out string
	cmd := &cobra.Command{
		Use:   "simulate --seed S --decisions N --out FILE",
		Short: "Write the decision log of a uniform policy in a planted world",
		Long: `Serve N pages of the planted world (six rows; --titles titles with three
artwork variants each) with the uniform logging policy (ε = 1) and write its
decision and reward lines (JSON lines) to --out. Each page is one row-order
decision and one artwork decision per title. In the world, market A clicks
"trending" first, B "top_picks", C "top10" (C's veterans "continue"); artwork
variant 2 wins in A, 0 in B, 1 in C. The same seed writes the same file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			if pages <= 0 {
				return usageErr("--decisions %d: must be positive", pages)
			}
			if titles < 0 {
				return usageErr("--titles %d: must be 0 or more", titles)
			}
			w := bandit.NewWorld(titles)
			logging, err := w.UniformPolicy(seed)
			if err != nil {
				return err
			}
			var records int
			var clicks float64
			err = atomicfile.Write(out, func(f io.Writer) error {
				lw := bandit.NewLogWriter(f)
				err := w.Simulate(cmd.Context(), logging, seed, pages, func(d bandit.Decision, r bandit.Reward) error {
					records++
					clicks += r.Value
					if err := lw.Decision(d); err != nil {
						return err
					}
					return lw.Reward(r)
				})
				if err != nil {
					return err
				}
				return lw.Flush()
			})
			if err != nil {
				return err
			}
			res := struct {
				Out       string  `json:"out"`
				Pages     int     `json:"pages"`
				Decisions int     `json:"decisions"`
				Reward    float64 `json:"mean_reward"`
				Policy    string  `json:"logging_policy"`
			}{out, pages, records, clicks / float64(records), logging.ID()}
			if a.json() {
				return a.printJSON(res)
			}
			_, err = fmt.Fprintf(a.out, "wrote %d decisions of %d pages to %s (logging policy %s, mean reward %.4f)\n",
				res.Decisions, res.Pages, res.Out, res.Policy, res.Reward)
			return err
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&seed, "seed", 1, "seed of contexts, decisions and rewards")
	f.IntVar(&pages, "decisions", 1000, "pages to serve (each a row order and one artwork decision per title)")
	f.IntVar(&titles, "titles", 20, "titles on a page")
	f.StringVar(&out, "out", "", "the log file to write (JSON lines)")
	return cmd
}

// banditLogFlags are how train and evaluate read logs.
type banditLogFlags struct {
	paths         []string
	skipMalformed bool
}

func (lf *banditLogFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&lf.paths, "log", nil, "a decision log (JSON lines; repeatable: decisions and rewards may be in different files)")
	cmd.Flags().BoolVar(&lf.skipMalformed, "skip-malformed", false, "go on when lines are malformed (they are counted in the answer)")
}

// banditLogSummary is what became of a log's lines, in every answer that read one.
type banditLogSummary struct {
	Lines          int `json:"lines"`
	Events         int `json:"events"`
	Unrewarded     int `json:"unrewarded"`
	UnknownRewards int `json:"unknown_rewards"`
	Duplicates     int `json:"duplicates"`
	Malformed      int `json:"malformed"`
	Blank          int `json:"blank"`
}

// read reads and joins the logs. Malformed lines fail the command (exit 2,
// naming the first few by file:line) unless --skip-malformed.
func (lf *banditLogFlags) read(cmd *cobra.Command) (*bandit.Log, banditLogSummary, error) {
	if len(lf.paths) == 0 {
		return nil, banditLogSummary{}, usageErr("--log is required")
	}
	log, err := bandit.ReadLogFiles(cmd.Context(), lf.paths...)
	if err != nil {
		return nil, banditLogSummary{}, usageErr("%w", err)
	}
	sum := banditLogSummary{Lines: log.Lines, Events: len(log.Events), Unrewarded: len(log.Unrewarded),
		UnknownRewards: len(log.UnknownRewards), Duplicates: len(log.Duplicates), Malformed: len(log.Malformed), Blank: log.Blank}
	if len(log.Malformed) > 0 && !lf.skipMalformed {
		var msgs []string
		for _, m := range log.Malformed[:min(5, len(log.Malformed))] {
			msgs = append(msgs, m.Error())
		}
		more := ""
		if n := len(log.Malformed) - len(msgs); n > 0 {
			more = fmt.Sprintf("\n  and %d more", n)
		}
		return nil, sum, usageErr("%d malformed log lines (--skip-malformed to go on without them):\n  %s%s",
			len(log.Malformed), strings.Join(msgs, "\n  "), more)
	}
	if len(log.Events) == 0 {
		return nil, sum, usageErr("the logs hold no decision with its reward (%d lines, %d decisions without reward, %d rewards of no decision)",
			log.Lines, len(log.Unrewarded), len(log.UnknownRewards))
	}
	return log, sum, nil
}

func (a *app) banditTrainCmd() *cobra.Command {
	var lf banditLogFlags
	var out string
	var buckets, ignore []string
	params := bandit.DefaultParams()
	cmd := &cobra.Command{
		Use:   "train --log FILE --out POLICY",
		Short: "Fit a LinUCB policy from decision logs",
		Long: `Fit LinUCB's per-arm models from logged decisions and rewards (the online
update replayed in time order) and save the policy file. The context encoding
is read from the logs: text attributes become one-hot categories, numbers are
standardized, or cut into one-hot buckets with --bucket NAME=B1,B2,...
(hour=6,12,18); --ignore leaves an attribute out. Malformed log lines fail the
command unless --skip-malformed; decisions without reward and rewards of no
decision are counted in the answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			bk, err := parseBanditBuckets(buckets)
			if err != nil {
				return err
			}
			log, sum, err := lf.read(cmd)
			if err != nil {
				return err
			}
			fz, err := bandit.InferFeaturizer(log.Events, bandit.InferOptions{Buckets: bk, Ignore: ignore})
			if err != nil {
				return usageErr("%w", err)
			}
			p, err := bandit.Fit(cmd.Context(), log.Events, fz, params)
			if err != nil {
				if errors.Is(err, bandit.ErrParams) {
					return usageErr("%w", err)
				}
				return err
			}
			if err := p.WriteFile(out); err != nil {
				return err
			}
			res := struct {
				Policy   string           `json:"policy"`
				Out      string           `json:"out"`
				Params   bandit.Params    `json:"params"`
				Features []bandit.Feature `json:"features"`
				Trained  bandit.TrainInfo `json:"trained"`
				Log      banditLogSummary `json:"log"`
			}{p.ID(), out, p.Params(), fz.Features(), p.Trained(), sum}
			if a.json() {
				return a.printJSON(res)
			}
			_, err = fmt.Fprintf(a.out, "policy %s trained on %d events (%d lines; %d unrewarded, %d unknown rewards, %d duplicates, %d malformed), written to %s\n",
				res.Policy, res.Trained.Records, sum.Lines, sum.Unrewarded, sum.UnknownRewards, sum.Duplicates, sum.Malformed, out)
			return err
		},
	}
	lf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "the policy file to write")
	f.Float64Var(&params.Alpha, "alpha", params.Alpha, "LinUCB's confidence width (≥ 0)")
	f.Float64Var(&params.Epsilon, "epsilon", params.Epsilon, "share of uniform decisions when serving, in (0, 1]")
	f.Float64Var(&params.Lambda, "lambda", params.Lambda, "ridge prior (> 0)")
	f.Uint64Var(&params.Seed, "seed", params.Seed, "mixed with each decision id into its random draw")
	f.StringArrayVar(&buckets, "bucket", nil, "cut a numeric attribute into one-hot buckets: `NAME=B1,B2,...` (repeatable)")
	f.StringArrayVar(&ignore, "ignore", nil, "an attribute to leave out (repeatable)")
	return cmd
}

func parseBanditBuckets(pairs []string) (map[string][]float64, error) {
	m, err := kv.Parse("--bucket", "NAME=B1,B2,...", pairs)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	out := make(map[string][]float64, len(m))
	for name, v := range m {
		for _, s := range strings.Split(v, ",") {
			b, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, usageErr("--bucket %s: %q is not a number", name, s)
			}
			out[name] = append(out[name], b)
		}
	}
	return out, nil
}

func (a *app) banditEvaluateCmd() *cobra.Command {
	var lf banditLogFlags
	var policyPath string
	var conf float64
	cmd := &cobra.Command{
		Use:   "evaluate --policy FILE --log FILE",
		Short: "Estimate a policy's value off-policy from decision logs (IPS, SNIPS, DR)",
		Long: `Estimate the mean reward the policy would get, from decisions another policy
logged with their propensities: inverse propensity scoring (IPS), its
self-normalized form (SNIPS) and doubly robust (DR, with the policy's linear
reward model as the direct method), each with a normal-approximation interval,
the effective sample size of the weights, and the logging policy's own value
(the mean logged reward). A row order is judged on its first position.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if policyPath == "" {
				return usageErr("--policy is required")
			}
			if !(conf > 0 && conf < 1) {
				return usageErr("--confidence %g: must be in (0, 1)", conf)
			}
			p, err := bandit.ReadPolicyFile(policyPath)
			if err != nil {
				return usageErr("%w", err)
			}
			log, sum, err := lf.read(cmd)
			if err != nil {
				return err
			}
			rep, err := bandit.Evaluate(cmd.Context(), p, log.Events, bandit.EvalOptions{Confidence: conf})
			if err != nil {
				return usageErr("%w", err)
			}
			res := struct {
				bandit.Report
				Log banditLogSummary `json:"log"`
			}{rep, sum}
			if a.json() {
				return a.printJSON(res)
			}
			return a.printBanditReport(rep, sum)
		},
	}
	lf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&policyPath, "policy", "", "the policy file to evaluate")
	f.Float64Var(&conf, "confidence", 0.95, "confidence of the intervals")
	return cmd
}

func (a *app) printBanditReport(rep bandit.Report, sum banditLogSummary) error {
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tRECORDS\tLOGGING\tIPS\tSNIPS\tDR\tESS")
	est := func(e *bandit.Estimate) string {
		if e == nil {
			return "-"
		}
		return fmt.Sprintf("%.4f [%.4f, %.4f]", e.Value, e.Low, e.High)
	}
	for _, k := range rep.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.0f\n", k.Kind, k.Records, est(k.Logging), est(k.IPS), est(k.SNIPS), est(k.DR), k.ESS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(a.out, "policy %s, %.0f%% intervals; log: %d lines, %d events, %d unrewarded, %d unknown rewards, %d duplicates, %d malformed\n",
		rep.Policy, 100*rep.Confidence, sum.Lines, sum.Events, sum.Unrewarded, sum.UnknownRewards, sum.Duplicates, sum.Malformed)
	return err
}

func (a *app) banditDecideCmd() *cobra.Command {
	var policyPath, id, rows string
	var attrs, artwork []string
	cmd := &cobra.Command{
		Use:   "decide --policy FILE --attr KEY=VALUE... [--rows A,B,C] [--artwork TITLE=ID,ID...]",
		Short: "Make one page's decisions with a policy, as serving would",
		Long: `Order --rows and choose each --artwork title's variant for the context given by
--attr, and print the decision records (what a server logs), with their
propensities. --id seeds the random draw: the same policy and id give the
same decisions (default: an id from the current time).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if policyPath == "" {
				return usageErr("--policy is required")
			}
			if rows == "" && len(artwork) == 0 {
				return usageErr("nothing to decide: give --rows and/or --artwork")
			}
			given, err := kv.Parse("--attr", "KEY=VALUE", attrs)
			if err != nil {
				return usageErr("%w", err)
			}
			ctx := make(map[string]any, len(given))
			for k, v := range given {
				ctx[k] = v
			}
			if _, err := kv.Parse("--artwork", "TITLE=ID,ID,...", artwork); err != nil {
				return usageErr("%w", err)
			}
			req := bandit.PageRequest{ID: id, At: time.Now().UTC(), Context: ctx}
			if req.ID == "" {
				req.ID = "cli-" + req.At.Format("20060102T150405.000000000")
			}
			if rows != "" {
				req.Rows = splitBanditList(rows)
			}
			for _, pair := range artwork { // in the order given, which kv's map loses
				title, ids, _ := strings.Cut(pair, "=")
				req.Titles = append(req.Titles, bandit.TitleArtwork{Title: strings.TrimSpace(title), Artworks: splitBanditList(ids)})
			}
			p, err := bandit.ReadPolicyFile(policyPath)
			if err != nil {
				return usageErr("%w", err)
			}
			page, err := p.DecidePage(req)
			if err != nil {
				return usageErr("%w", err)
			}
			if a.json() {
				return a.printJSON(page)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tCHOSEN\tPROPENSITY")
			if page.Rows != nil {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.6g (first row %.6g)\n", page.Rows.ID, page.Rows.Kind, strings.Join(page.Rows.Chosen, ","), page.Rows.Propensity, page.Rows.FirstPropensity)
			}
			for _, d := range page.Artwork {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.6g\n", d.ID, d.Kind, d.Chosen[0], d.Propensity)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&policyPath, "policy", "", "the policy file")
	f.StringArrayVar(&attrs, "attr", nil, "a context attribute `KEY=VALUE` (repeatable)")
	f.StringVar(&rows, "rows", "", "the page's rows to order, comma-separated")
	f.StringArrayVar(&artwork, "artwork", nil, "a title and its artwork variants `TITLE=ID,ID,...` (repeatable)")
	f.StringVar(&id, "id", "", "the page's decision id (seeds the draw; the records' ids derive from it)")
	return cmd
}

func splitBanditList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}
