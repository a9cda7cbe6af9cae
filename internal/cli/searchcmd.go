package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/search"
)

func (a *app) searchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "search",
		Short: "Keyword search over a title catalog: BM25, re-ranked by a learned model",
		Long: `Search titles by keywords. Retrieval is BM25 over name, description, genres and
creator (a bleve index); a re-ranker learned from a click log orders the top
candidates by retrieval score, title popularity and the member's affinity to
the title's genres. Without a model, or when it fails, answers are in BM25
order and say so.`,
	}
	cmd.AddCommand(a.searchIndexCmd(), a.searchTrainCmd(), a.searchQueryCmd(), a.searchBenchCmd(), a.searchSynthCmd())
	return cmd
}

func (a *app) searchIndexCmd() *cobra.Command {
	var catalog, out string
	cmd := &cobra.Command{
		Use:   "index --catalog FILE --out DIR",
		Short: "Build a BM25 index of a catalog in a folder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if catalog == "" || out == "" {
				return usageErr("--catalog and --out are required")
			}
			titles, err := search.ReadFile(catalog, search.ReadCatalog)
			if err != nil {
				return err
			}
			t0 := time.Now()
			ix, err := search.NewIndex(cmd.Context(), titles, out)
			if errors.Is(err, fault.Conflict) {
				return usageErr("--out: %v", err)
			}
			if err != nil {
				return err
			}
			defer ix.Close()
			res := struct {
				Index   string  `json:"index"`
				Titles  int     `json:"titles"`
				Seconds float64 `json:"seconds"`
			}{out, len(titles), time.Since(t0).Seconds()}
			if a.json() {
				return a.printJSON(res)
			}
			_, err = fmt.Fprintf(a.out, "indexed %d titles in %s (%.2fs)\n", res.Titles, out, res.Seconds)
			return err
		},
	}
	cmd.Flags().StringVar(&catalog, "catalog", "", "catalog CSV: title,name,genres,creator,new_creator,released[,markets][,description]")
	cmd.Flags().StringVar(&out, "out", "", "the index folder to create (must not exist)")
	return cmd
}

func (a *app) searchTrainCmd() *cobra.Command {
	var catalog, interactions, clicks, out string
	var opts search.TrainOptions
	cmd := &cobra.Command{
		Use:   "train --catalog F --interactions F --clicks F --out model.json",
		Short: "Train the re-ranker from a click log; print its held-out metrics",
		Long: `Train the search re-ranker: a logistic regression of clicked or not on the
BM25 score (relative to the query's best), log(1 + plays) of the title and
the member's share of plays in the title's genres, standardized. Plays and
genre shares come from the interactions file (member,title,ts,...) joined
with the catalog; the click log is member,query,title,clicked[,position].
One (member, query) session in five is held out: the metrics compare the
rank of its clicks under BM25 and re-ranked (MRR, NDCG@10).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if catalog == "" || interactions == "" || clicks == "" || out == "" {
				return usageErr("--catalog, --interactions, --clicks and --out are required")
			}
			titles, err := search.ReadFile(catalog, search.ReadCatalog)
			if err != nil {
				return err
			}
			its, err := search.ReadFile(interactions, search.ReadInteractions)
			if err != nil {
				return err
			}
			cl, err := search.ReadFile(clicks, search.ReadClicks)
			if err != nil {
				return err
			}
			ix, err := search.NewIndex(cmd.Context(), titles, "")
			if err != nil {
				return err
			}
			defer ix.Close()
			m, err := search.Train(cmd.Context(), ix, its, cl, opts)
			if err != nil {
				return err
			}
			if err := atomicfile.Write(out, m.Write); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(struct {
					Model   string             `json:"model"`
					Weights map[string]float64 `json:"weights"`
					Metrics search.Metrics     `json:"metrics"`
				}{out, searchWeights(m), m.Metrics})
			}
			mt := m.Metrics
			_, err = fmt.Fprintf(a.out, "model %s: %d training rows, %d held-out sessions\nMRR      BM25 %.4f  re-ranked %.4f\nNDCG@10  BM25 %.4f  re-ranked %.4f\nweights  %s\n",
				out, mt.TrainRows, mt.TestSessions, mt.MRRBM25, mt.MRRRerank, mt.NDCG10BM25, mt.NDCG10Rerank, searchWeightText(m))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&catalog, "catalog", "", "catalog CSV")
	f.StringVar(&interactions, "interactions", "", "interactions CSV: member,title,ts,...")
	f.StringVar(&clicks, "clicks", "", "click log CSV: member,query,title,clicked[,position]")
	f.StringVar(&out, "out", "", "the model file to write (JSON)")
	f.IntVar(&opts.Candidates, "candidates", search.DefaultCandidates, "titles retrieved per query for the re-ranker")
	f.Float64Var(&opts.L2, "l2", 1, "L2 penalty on the standardized weights")
	return cmd
}

func searchWeights(m *search.Model) map[string]float64 {
	w := map[string]float64{"bias": m.Bias}
	for i, f := range m.Features {
		w[f] = m.Weights[i]
	}
	return w
}

func searchWeightText(m *search.Model) string {
	parts := make([]string, len(m.Features))
	for i, f := range m.Features {
		parts[i] = fmt.Sprintf("%s %+.3f", f, m.Weights[i])
	}
	return strings.Join(parts, ", ")
}

func (a *app) searchQueryCmd() *cobra.Command {
	var catalog, indexDir, modelPath, member string
	var n, candidates int
	cmd := &cobra.Command{
		Use:   "query (--catalog F | --index DIR) [--model model.json] [--member ID] QUERY",
		Short: "Answer a query: BM25, re-ranked when a model is given",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (catalog == "") == (indexDir == "") {
				return usageErr("give one of --catalog and --index")
			}
			if n < 1 {
				return usageErr("-n %d: must be at least 1", n)
			}
			query := strings.Join(args, " ")
			var ix *search.Index
			var err error
			if indexDir != "" {
				ix, err = search.OpenIndex(indexDir)
			} else {
				var titles []search.Title
				if titles, err = search.ReadFile(catalog, search.ReadCatalog); err == nil {
					ix, err = search.NewIndex(cmd.Context(), titles, "")
				}
			}
			if err != nil {
				return err
			}
			defer ix.Close()
			var m *search.Model
			if modelPath != "" {
				if m, err = search.ReadFile(modelPath, search.ReadModel); err != nil {
					return err
				}
			}
			s, err := search.NewSearcher(ix, m, candidates)
			if err != nil {
				return usageErr("--candidates %d: must be at least 1", candidates)
			}
			hits, err := s.Search(cmd.Context(), query, member, n)
			if err != nil {
				return err
			}
			path := search.PathBM25
			if len(hits) > 0 {
				path = hits[0].Path
			} else if m != nil {
				path = search.PathRerank
			}
			if a.json() {
				return a.printJSON(struct {
					Query  string       `json:"query"`
					Member string       `json:"member"`
					Path   string       `json:"path"`
					Hits   []search.Hit `json:"hits"`
				}{query, member, path, searchHitsOrEmpty(hits)})
			}
			return printSearchHits(a.out, path, hits)
		},
	}
	f := cmd.Flags()
	f.StringVar(&catalog, "catalog", "", "catalog CSV to index in memory")
	f.StringVar(&indexDir, "index", "", "an index folder from 'baton search index'")
	f.StringVar(&modelPath, "model", "", "a re-ranker from 'baton search train' (none: BM25 order)")
	f.StringVar(&member, "member", "", "the member searching (for genre affinity)")
	f.IntVarP(&n, "n", "n", 10, "hits to answer")
	f.IntVar(&candidates, "candidates", search.DefaultCandidates, "titles retrieved for the re-ranker")
	return cmd
}

func searchHitsOrEmpty(s []search.Hit) []search.Hit {
	if s == nil {
		return []search.Hit{}
	}
	return s
}

func printSearchHits(w io.Writer, path string, hits []search.Hit) error {
	fmt.Fprintf(w, "path: %s\n", path)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tTITLE\tNAME\tBM25\tBM25 RANK\tSCORE\tWHY")
	for _, h := range hits {
		score := "-"
		if h.Score != nil {
			score = fmt.Sprintf("%.4f", *h.Score)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.3f\t%d\t%s\t%s\n", h.Rank, h.Title, h.Name, h.BM25, h.BM25Rank, score, h.Why)
	}
	return tw.Flush()
}

func (a *app) searchBenchCmd() *cobra.Command {
	var o search.BenchOptions
	cmd := &cobra.Command{
		Use:   "bench [--titles N] [--queries N]",
		Short: "Time queries (BM25 top 100 + re-rank) on a synthetic catalog: p50, p99",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := search.RunBench(cmd.Context(), o)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(r)
			}
			_, err = fmt.Fprintf(a.out, "%d titles indexed in %s, re-ranker trained in %s (MRR BM25 %.3f, re-ranked %.3f)\n%d queries: p50 %s  p99 %s  max %s  CPU per query %s  (%d re-ranked)\nthe querying thread's CPU time per query: p50 %s  p99 %s\n",
				r.Titles, r.Index.Round(time.Millisecond), r.Train.Round(time.Millisecond), r.MRRBM25, r.MRRRerank,
				r.Queries, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.CPU.Round(time.Microsecond), r.Reranked, r.CPUP50.Round(time.Microsecond), r.CPUP99.Round(time.Microsecond))
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Titles, "titles", 10000, "titles in the synthetic catalog")
	f.IntVar(&o.Queries, "queries", 2000, "queries to time, one after another")
	f.IntVarP(&o.N, "n", "n", 20, "hits per answer")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic data")
	return cmd
}

func (a *app) searchSynthCmd() *cobra.Command {
	var o search.SynthOptions
	var out string
	cmd := &cobra.Command{
		Use:   "synth --out DIR",
		Short: "Write a synthetic catalog, interactions and click log (planted tastes) to try search on",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			if o.Titles < 2 || o.Members < 1 || o.Sessions < 0 || o.Plays < 1 {
				return usageErr("--titles (≥ 2), --members, --plays (≥ 1) and --sessions (≥ 0) must be positive")
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return usageErr("--out: %v", err)
			}
			s := search.Synthesize(o)
			files := []struct {
				name  string
				write func(io.Writer) error
			}{
				{"catalog.csv", func(w io.Writer) error { return search.WriteCatalog(w, s.Titles) }},
				{"interactions.csv", func(w io.Writer) error { return search.WriteInteractions(w, s.Interactions) }},
				{"clicks.csv", func(w io.Writer) error { return search.WriteClicks(w, s.Clicks) }},
			}
			for _, f := range files {
				if err := atomicfile.Write(filepath.Join(out, f.name), f.write); err != nil {
					return err
				}
			}
			res := map[string]int{"titles": len(s.Titles), "interactions": len(s.Interactions), "clicks": len(s.Clicks)}
			if a.json() {
				return a.printJSON(res)
			}
			_, err := fmt.Fprintf(a.out, "wrote %s/{catalog,interactions,clicks}.csv: %d titles, %d plays, %d click rows\n", out, len(s.Titles), len(s.Interactions), len(s.Clicks))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "folder to write catalog.csv, interactions.csv, clicks.csv into")
	f.IntVar(&o.Titles, "titles", 2000, "titles")
	f.IntVar(&o.Members, "members", 300, "members")
	f.IntVar(&o.Sessions, "sessions", 4000, "searches (one click each, nine shown beside it)")
	f.IntVar(&o.Plays, "plays", 30, "plays per member")
	f.Uint64Var(&o.Seed, "seed", 1, "seed")
	return cmd
}
