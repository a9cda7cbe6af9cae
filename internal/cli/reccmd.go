package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/atomicfile"
	"github.com/baton-ml/baton/internal/dur"

	pq "github.com/parquet-go/parquet-go"
	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/kv"
	"github.com/baton-ml/baton/internal/rec"
)

func (a *app) recCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rec",
		Short: "Recommendation models: synthesize data, train, evaluate, recommend, batch top-N",
		Long: `Recommendation models on CSV files: popularity per market, item-kNN, implicit
ALS (conjugate gradient), personalized PageRank, a learned blend of them and a
multi-task (play and completion) factorization. Every model is one file in one
format (docs/models.md, "Recommendation models").`,
	}
	cmd.AddCommand(a.recSynthCmd(), a.recTrainCmd(), a.recImportCmd(), a.recEvalCmd(), a.recRecommendCmd(), a.recTopNCmd())
	return cmd
}

func (a *app) recSynthCmd() *cobra.Command {
	var c rec.Synth
	var seed int64
	var out string
	cmd := &cobra.Command{
		Use:   "synth --out DIR",
		Short: "Write a synthetic service with planted tastes: interactions.csv, catalog.csv, members.csv",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if out == "" {
				return usageErr("--out DIR is required")
			}
			if seed < 0 {
				return usageErr("--seed %d: must be ≥ 0", seed)
			}
			c.Seed = uint64(seed)
			w, err := rec.Synthesize(c)
			if err != nil {
				return usageErr("%v", err)
			}
			if err := w.WriteCSV(out); err != nil {
				return err
			}
			d := w.Data
			if a.json() {
				return a.printJSON(map[string]any{"dir": out, "members": len(d.Members), "titles": len(d.Titles),
					"markets": d.Markets, "interactions": d.Inter.Len()})
			}
			fmt.Fprintf(a.out, "wrote %s: %d members, %d titles, %d markets, %d interactions\n",
				out, len(d.Members), len(d.Titles), len(d.Markets), d.Inter.Len())
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&seed, "seed", 1, "the seed: the same seed writes the same files")
	f.IntVar(&c.Members, "members", 2000, "members")
	f.IntVar(&c.Titles, "titles", 500, "titles")
	f.IntVar(&c.Markets, "markets", 4, "markets")
	f.IntVar(&c.Interactions, "interactions", 0, "interaction rows (default 40 per member)")
	f.IntVar(&c.Factors, "factors", 8, "planted latent factors")
	f.IntVar(&c.Days, "days", 60, "days the interactions span")
	f.StringVar(&out, "out", "", "the folder to write the three files into")
	return cmd
}

// recData names the CSV files of a dataset.
type recData struct {
	interactions, catalog, members string
}

func (d *recData) flags(f interface {
	StringVar(*string, string, string, string)
}) {
	f.StringVar(&d.interactions, "interactions", "", "interactions CSV: member,title,ts[,event,weight,market]; or a folder whose *.csv files (partitions, each with its header) are read in name order")
	f.StringVar(&d.catalog, "catalog", "", "catalog CSV: title,name,genres,creator,new_creator,released[,markets]")
	f.StringVar(&d.members, "members", "", "members CSV (optional): member,market,joined")
}

func (d *recData) read() (*rec.Dataset, error) {
	if d.interactions == "" || d.catalog == "" {
		return nil, usageErr("--interactions FILE and --catalog FILE are required")
	}
	open := func(p string) (*os.File, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		return f, nil
	}
	cf, err := open(d.catalog)
	if err != nil {
		return nil, err
	}
	defer cf.Close()
	var mr io.Reader
	if d.members != "" {
		mf, err := open(d.members)
		if err != nil {
			return nil, err
		}
		defer mf.Close()
		mr = mf
	}
	parts := []string{d.interactions}
	if st, err := os.Stat(d.interactions); err == nil && st.IsDir() {
		if parts, err = filepath.Glob(filepath.Join(d.interactions, "*.csv")); err != nil {
			return nil, usageErr("--interactions %s: %v", d.interactions, err)
		}
		if len(parts) == 0 {
			return nil, usageErr("--interactions %s: a folder with no *.csv file", d.interactions)
		}
		sort.Strings(parts)
	}
	titles, err := rec.ReadCatalog(cf, d.catalog)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	var ms []rec.Member
	if mr != nil {
		if ms, err = rec.ReadMembers(mr, d.members); err != nil {
			return nil, usageErr("%w", err)
		}
	}
	ds, err := rec.NewDataset(titles, ms)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	for _, p := range parts {
		inf, err := open(p)
		if err != nil {
			return nil, err
		}
		err = rec.ReadInteractions(ds, inf, p)
		inf.Close()
		if err != nil {
			return nil, usageErr("%w", err)
		}
	}
	return ds, nil
}

// recCut reads a cut-off flag: a time, or -DURATION (such as -2d) before
// the dataset's last interaction (the last days held out, whatever the
// dates).
func recCut(ds *rec.Dataset, flag, s string) (int64, error) {
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		d, err := dur.Parse(rest)
		if err != nil || d <= 0 {
			return 0, usageErr("%s %q: a time, or -DURATION before the last interaction such as -2d", flag, s)
		}
		var last int64
		for _, ts := range ds.Inter.TS {
			last = max(last, ts)
		}
		return last - int64(d/time.Second), nil
	}
	return recTime(flag, s)
}

// recTime reads a time flag: RFC 3339, a date or unix seconds.
func recTime(flag, s string) (int64, error) {
	ts, err := rec.ParseTime(s)
	if err != nil {
		return 0, usageErr("%s: %v", flag, err)
	}
	return ts, nil
}

type recTrainOut struct {
	Kind         string            `json:"kind"`
	Out          string            `json:"out"`
	Params       map[string]string `json:"params"`
	Members      int               `json:"members"`
	Titles       int               `json:"titles"`
	Interactions int               `json:"interactions"`
	Until        string            `json:"until,omitempty"`
	ReadSeconds  float64           `json:"read_seconds"`
	TrainSeconds float64           `json:"train_seconds"`
	SaveSeconds  float64           `json:"save_seconds"`
	Bytes        int64             `json:"bytes"`
}

func (a *app) recTrainCmd() *cobra.Command {
	var data recData
	var kind, until, out, metricsOut string
	var params []string
	cmd := &cobra.Command{
		Use:   "train --model KIND --interactions FILE --catalog FILE --out FILE",
		Short: "Train a recommendation model and write it as one model file",
		Long: `Train a model of a kind (` + strings.Join(rec.Kinds, ", ") + `) on the interactions
before --until (all of them without it). --param NAME=VALUE sets a kind's
parameters (docs/models.md lists them); an unknown one is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind == "" || out == "" {
				return usageErr("--model KIND and --out FILE are required (kinds: %s)", strings.Join(rec.Kinds, ", "))
			}
			p, err := kv.Parse("--param", "NAME=VALUE", params)
			if err != nil {
				return err
			}
			t0 := time.Now()
			ds, err := data.read()
			if err != nil {
				return err
			}
			var cut int64
			if until != "" {
				if cut, err = recCut(ds, "--until", until); err != nil {
					return err
				}
				ds = ds.Before(cut)
			}
			t1 := time.Now()
			m, err := rec.Train(cmd.Context(), kind, ds, p)
			if err != nil {
				return recErr(err)
			}
			t2 := time.Now()
			if err := atomicfile.Write(out, m.Save); err != nil {
				return err
			}
			res := recTrainOut{Kind: kind, Out: out, Params: m.Params(), Members: len(ds.Members), Titles: len(ds.Titles),
				Interactions: ds.Inter.Len(), ReadSeconds: t1.Sub(t0).Seconds(), TrainSeconds: t2.Sub(t1).Seconds(),
				SaveSeconds: time.Since(t2).Seconds()}
			if done, err := a.recSummary(&res, cut, metricsOut); done || err != nil {
				return err
			}
			fmt.Fprintf(a.out, "trained %s on %d interactions (%d members, %d titles) in %.2fs; wrote %s (%d bytes)\n",
				kind, res.Interactions, res.Members, res.Titles, res.TrainSeconds, out, res.Bytes)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "model", "", "the kind: "+strings.Join(rec.Kinds, "|"))
	data.flags(f)
	f.StringVar(&until, "until", "", "train on interactions before this time (RFC 3339, a date or unix seconds)")
	f.StringArrayVar(&params, "param", nil, "`NAME=VALUE` a parameter of the kind (repeatable)")
	f.StringVar(&out, "out", "", "the model file to write")
	f.StringVar(&metricsOut, "metrics-out", "", "write the training summary (sizes, times, params) here as JSON")
	return cmd
}

func (a *app) recImportCmd() *cobra.Command {
	var data recData
	var memberFactors, titleFactors, until, out, metricsOut string
	cmd := &cobra.Command{
		Use:   "import --member-factors FILE --title-factors FILE --interactions FILE --catalog FILE --out FILE",
		Short: "Write a factor model trained elsewhere as an als model file",
		Long: `Import a matrix factorization trained outside baton: the member factors
(member,f0,...,fK-1) and the title factors (title,f0,...,fK-1), with the data
it was trained on (the interactions before --until, the catalog, the members),
become an als model file, the one baton rec train writes: it evaluates,
registers and serves as one (docs/models.md, "Bringing your own model").
Both files need the same K and finite factors; every title of the catalog and
every member with interactions needs a row. A bad cell exits 2 naming the
file, the line and the column.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if memberFactors == "" || titleFactors == "" || out == "" {
				return usageErr("--member-factors FILE, --title-factors FILE and --out FILE are required")
			}
			t0 := time.Now()
			read := func(path, id string) (*rec.Factors, error) {
				f, err := os.Open(path)
				if err != nil {
					return nil, usageErr("%v", err)
				}
				defer f.Close()
				fs, err := rec.ReadFactors(f, path, id)
				if err != nil {
					return nil, usageErr("%w", err)
				}
				return fs, nil
			}
			mf, err := read(memberFactors, "member")
			if err != nil {
				return err
			}
			tf, err := read(titleFactors, "title")
			if err != nil {
				return err
			}
			ds, err := data.read()
			if err != nil {
				return err
			}
			var cut int64
			if until != "" {
				if cut, err = recCut(ds, "--until", until); err != nil {
					return err
				}
				ds = ds.Before(cut)
			}
			t1 := time.Now()
			m, err := rec.ImportALS(ds, mf, tf)
			if err != nil {
				return recErr(err)
			}
			t2 := time.Now()
			if err := atomicfile.Write(out, m.Save); err != nil {
				return err
			}
			res := recTrainOut{Kind: m.Kind(), Out: out, Params: m.Params(), Members: len(ds.Members), Titles: len(ds.Titles),
				Interactions: ds.Inter.Len(), ReadSeconds: t1.Sub(t0).Seconds(), TrainSeconds: t2.Sub(t1).Seconds(),
				SaveSeconds: time.Since(t2).Seconds()}
			if done, err := a.recSummary(&res, cut, metricsOut); done || err != nil {
				return err
			}
			fmt.Fprintf(a.out, "imported %d member and %d title factors (K = %s) with %d interactions; wrote %s (%d bytes)\n",
				len(mf.IDs), len(tf.IDs), res.Params["factors"], res.Interactions, out, res.Bytes)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&memberFactors, "member-factors", "", "member factors CSV: member,f0,...,fK-1")
	f.StringVar(&titleFactors, "title-factors", "", "title factors CSV: title,f0,...,fK-1")
	data.flags(f)
	f.StringVar(&until, "until", "", "the interactions the factors were trained on end before this time (as rec train --until)")
	f.StringVar(&out, "out", "", "the model file to write")
	f.StringVar(&metricsOut, "metrics-out", "", "write the summary (sizes, times, params) here as JSON")
	return cmd
}

// recSummary completes a model file's summary (the cut, the file's size),
// writes it to metricsOut when asked, and prints it as JSON when that is
// the output (done: nothing more to print).
func (a *app) recSummary(res *recTrainOut, cut int64, metricsOut string) (done bool, err error) {
	if cut != 0 {
		res.Until = time.Unix(cut, 0).UTC().Format(time.RFC3339)
	}
	if st, err := os.Stat(res.Out); err == nil {
		res.Bytes = st.Size()
	}
	if metricsOut != "" {
		if err := atomicfile.Write(metricsOut, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}); err != nil {
			return true, err
		}
	}
	if a.json() {
		return true, a.printJSON(res)
	}
	return false, nil
}

// recErr gives invalid input exit 2 and keeps the rest.
func recErr(err error) error {
	if fault.Of(err) == fault.Invalid {
		return usageErr("%w", err)
	}
	return err
}

func loadRecModel(path string) (*rec.Recommender, error) {
	if path == "" {
		return nil, usageErr("--model FILE is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	defer f.Close()
	m, err := rec.Load(f)
	if err != nil {
		return nil, usageErr("%s: %w", path, err)
	}
	return m, nil
}

type recEvalOut struct {
	rec.Metrics
	Model string             `json:"model"`
	Kind  string             `json:"kind"`
	Split string             `json:"split"`
	Flat  map[string]float64 `json:"flat"`
}

func (a *app) recEvalCmd() *cobra.Command {
	var data recData
	var model, split string
	var k int
	cmd := &cobra.Command{
		Use:   "eval --model FILE --interactions FILE --catalog FILE --split TIME",
		Short: "Evaluate a model on the interactions from --split on",
		Long: `Evaluate a model on the held-out interactions at or after --split: recall@k,
NDCG@k, MAP@k, completion NDCG, coverage, intra-list diversity, novelty,
per-market recall and the exposure share of new creators. The table output is
one NAME=VALUE line per metric, ready for model register --metric.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if split == "" {
				return usageErr("--split TIME is required: the held-out interactions are those at or after it")
			}
			if k < 1 {
				return usageErr("-k %d: must be at least 1", k)
			}
			m, err := loadRecModel(model)
			if err != nil {
				return err
			}
			ds, err := data.read()
			if err != nil {
				return err
			}
			cut, err := recCut(ds, "--split", split)
			if err != nil {
				return err
			}
			_, test := ds.Cut(cut)
			if test.Inter.Len() == 0 {
				return usageErr("--split %s: no interaction at or after it in %s", split, data.interactions)
			}
			met, err := rec.Evaluate(cmd.Context(), m, test, k)
			if err != nil {
				return recErr(err)
			}
			if a.json() {
				return a.printJSON(recEvalOut{Metrics: met, Model: model, Kind: m.Kind(),
					Split: time.Unix(cut, 0).UTC().Format(time.RFC3339), Flat: met.Flat()})
			}
			flat := met.Flat()
			for _, n := range met.FlatNames() {
				fmt.Fprintf(a.out, "%s=%s\n", n, strconv.FormatFloat(flat[n], 'g', 6, 64))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "the model file")
	data.flags(f)
	f.StringVar(&split, "split", "", "the held-out split: interactions at or after this time")
	f.IntVarP(&k, "k", "k", 10, "the cut-off of the metrics")
	return cmd
}

type recRecommendOut struct {
	Member     string     `json:"member"`
	Kind       string     `json:"kind"`
	Known      bool       `json:"known"`
	Market     string     `json:"market"`
	Confidence float64    `json:"confidence"`
	Items      []rec.Item `json:"items"`
}

func (a *app) recRecommendCmd() *cobra.Command {
	var model, member, market string
	var o rec.Options
	cmd := &cobra.Command{
		Use:   "recommend --model FILE --member ID",
		Short: "A member's top N from a model file",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if member == "" {
				return usageErr("--member ID is required")
			}
			if o.N < 1 {
				return usageErr("-n %d: must be at least 1", o.N)
			}
			m, err := loadRecModel(model)
			if err != nil {
				return err
			}
			o.Market = market
			res := recRecommendOut{Member: member, Kind: m.Kind(), Confidence: m.Confidence(member), Items: m.Recommend(member, o)}
			res.Market, res.Known = m.MemberMarket(member)
			if market != "" {
				res.Market = market
			}
			if a.json() {
				return a.printJSON(res)
			}
			for i, it := range res.Items {
				t, _ := m.Title(it.Title)
				fmt.Fprintf(a.out, "%d\t%s\t%.4g\t%s\n", i+1, it.Title, it.Score, t.Name)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "the model file")
	f.StringVar(&member, "member", "", "the member")
	f.IntVarP(&o.N, "n", "n", 20, "how many titles")
	f.StringVar(&market, "market", "", "filter by this market (default the member's)")
	f.BoolVar(&o.IncludeSeen, "include-seen", false, "keep titles the member already played")
	return cmd
}

type topNRow struct {
	Member string  `parquet:"member,dict,zstd"`
	Rank   int32   `parquet:"rank,zstd"`
	Title  string  `parquet:"title,dict,zstd"`
	Score  float32 `parquet:"score,zstd"`
}

func (a *app) recTopNCmd() *cobra.Command {
	var model, out string
	var n int
	cmd := &cobra.Command{
		Use:   "topn --model FILE --out FILE.csv|FILE.parquet",
		Short: "Write the top N of every member (member,rank,title,score) as CSV or Parquet",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out FILE.csv or FILE.parquet is required")
			}
			parquet := strings.HasSuffix(out, ".parquet")
			if !parquet && !strings.HasSuffix(out, ".csv") {
				return usageErr("--out %s: the name must end in .csv or .parquet", out)
			}
			if n < 1 {
				return usageErr("-n %d: must be at least 1", n)
			}
			m, err := loadRecModel(model)
			if err != nil {
				return err
			}
			t0 := time.Now()
			var rows int
			err = atomicfile.Write(out, func(w io.Writer) error {
				var e error
				if parquet {
					rows, e = topNParquet(cmd.Context(), w, m, n)
				} else {
					rows, e = topNCSV(cmd.Context(), w, m, n)
				}
				return e
			})
			if err != nil {
				return err
			}
			res := map[string]any{"out": out, "members": m.Members(), "rows": rows, "seconds": time.Since(t0).Seconds()}
			if a.json() {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.out, "wrote %s: %d rows for %d members in %.2fs\n", out, rows, m.Members(), res["seconds"])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "the model file")
	f.StringVar(&out, "out", "", "the file to write: .csv or .parquet")
	f.IntVarP(&n, "n", "n", 100, "titles per member")
	return cmd
}

func topNCSV(ctx context.Context, w io.Writer, m *rec.Recommender, n int) (int, error) {
	rows := 0
	if _, err := io.WriteString(w, "member,rank,title,score\n"); err != nil {
		return 0, err
	}
	buf := make([]byte, 0, 64*n)
	err := m.TopNAll(ctx, n, func(member string, items []rec.Item) error {
		buf = buf[:0]
		for i, it := range items {
			buf = append(buf, csvCell(member)...)
			buf = append(buf, ',')
			buf = strconv.AppendInt(buf, int64(i+1), 10)
			buf = append(buf, ',')
			buf = append(buf, csvCell(it.Title)...)
			buf = append(buf, ',')
			buf = strconv.AppendFloat(buf, it.Score, 'g', 7, 32)
			buf = append(buf, '\n')
		}
		rows += len(items)
		_, err := w.Write(buf)
		return err
	})
	return rows, err
}

func csvCell(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

func topNParquet(ctx context.Context, w io.Writer, m *rec.Recommender, n int) (int, error) {
	pw := pq.NewGenericWriter[topNRow](w)
	rows := 0
	batch := make([]topNRow, 0, 4096)
	flush := func() error {
		_, err := pw.Write(batch)
		batch = batch[:0]
		return err
	}
	err := m.TopNAll(ctx, n, func(member string, items []rec.Item) error {
		for i, it := range items {
			batch = append(batch, topNRow{Member: member, Rank: int32(i + 1), Title: it.Title, Score: float32(it.Score)})
		}
		rows += len(items)
		if len(batch) >= 4096 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = pw.Close()
	}
	return rows, err
}
