package cli

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/quality"
)

func (a *app) qualityCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quality",
		Short: "Score titles' encoding and playback quality; flag the poor ones with reasons",
		Long: `Content quality: a ridge regression fitted on a labelled sample of human
ratings (title,rating) turns each title's signals (title,bitrate_kbps,vmaf,
rebuffer_rate,startup_ms,audio_lufs,subtitle_coverage,...) into a predicted
rating; titles predicted below the threshold are flagged, with the signals
beyond what well-rated titles show as reasons. Scoring runs per shard
(--shard I/N) so a flow's foreach can split the catalog; merge joins them.`,
	}
	cmd.AddCommand(a.qualityTrainCmd(), a.qualityScoreCmd(), a.qualityMergeCmd(), a.qualitySynthCmd())
	return cmd
}

func (a *app) qualityTrainCmd() *cobra.Command {
	var signals, ratings, out string
	var opts quality.TrainOptions
	cmd := &cobra.Command{
		Use:   "train --signals F --ratings F --out model.json",
		Short: "Fit the quality model on rated titles; print its held-out metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if signals == "" || ratings == "" || out == "" {
				return usageErr("--signals, --ratings and --out are required")
			}
			s, err := quality.ReadFile(signals, quality.ReadSignals)
			if err != nil {
				return err
			}
			r, err := quality.ReadFile(ratings, quality.ReadRatings)
			if err != nil {
				return err
			}
			m, err := quality.Train(cmd.Context(), s, r, opts)
			if err != nil {
				return err
			}
			if err := atomicfile.Write(out, m.Write); err != nil {
				return err
			}
			weights := map[string]float64{}
			for i, n := range m.Signals {
				weights[n] = m.Weights[i]
			}
			if a.json() {
				return a.printJSON(struct {
					Model     string             `json:"model"`
					Threshold float64            `json:"threshold"`
					Weights   map[string]float64 `json:"weights"`
					Metrics   quality.Metrics    `json:"metrics"`
				}{out, m.Threshold, weights, m.Metrics})
			}
			mt := m.Metrics
			fmt.Fprintf(a.out, "model %s: %d rated titles, %d held out\nheld-out RMSE %.4f (predicting the mean: %.4f), R² %.3f\n", out, mt.Rated, mt.Test, mt.RMSE, mt.RMSEBaseline, mt.R2)
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SIGNAL\tENTERS AS\tWEIGHT\tOUT OF RANGE")
			for i, n := range m.Signals {
				b := m.Bounds[i]
				rng := fmt.Sprintf("above %.4g", b.Limit)
				if b.Low {
					rng = fmt.Sprintf("below %.4g", b.Limit)
				}
				fmt.Fprintf(tw, "%s\t%s\t%+.4f\t%s\n", n, m.Transforms[i], m.Weights[i], rng)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&signals, "signals", "", "signals CSV: title,bitrate_kbps,vmaf,...")
	f.StringVar(&ratings, "ratings", "", "human ratings CSV: title,rating")
	f.StringVar(&out, "out", "", "the model file to write (JSON)")
	f.Float64Var(&opts.Threshold, "threshold", quality.DefaultThreshold, "flag titles predicted below this rating")
	f.Float64Var(&opts.L2, "l2", 1, "ridge penalty on the standardized weights")
	return cmd
}

func (a *app) qualityScoreCmd() *cobra.Command {
	var modelPath, signals, shard, out string
	var threshold float64
	cmd := &cobra.Command{
		Use:   "score --model F --signals F [--shard I/N] --out F.csv",
		Short: "Score the titles of a shard; write title,score,flagged,reasons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || signals == "" || out == "" {
				return usageErr("--model, --signals and --out are required")
			}
			sh, err := quality.ParseShard(shard)
			if err != nil {
				return usageErr("--shard: %v", err)
			}
			if math.IsInf(threshold, 0) {
				return usageErr("--threshold %g: must be a number", threshold)
			}
			m, err := quality.ReadFile(modelPath, quality.ReadModel)
			if err != nil {
				return err
			}
			s, err := quality.ReadFile(signals, quality.ReadSignals)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("threshold") {
				threshold = math.NaN()
			}
			scores, err := m.Score(cmd.Context(), s, sh, threshold)
			if err != nil {
				return err
			}
			if err := atomicfile.Write(out, func(w io.Writer) error { return quality.WriteScores(w, scores) }); err != nil {
				return err
			}
			return a.printQualitySummary(out, scores)
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "a model from 'baton quality train'")
	f.StringVar(&signals, "signals", "", "signals CSV with the model's columns")
	f.StringVar(&shard, "shard", "0/1", "score the titles of shard I of N (by a hash of the title id)")
	f.StringVar(&out, "out", "", "the scores CSV to write")
	f.Float64Var(&threshold, "threshold", quality.DefaultThreshold, "flag below this predicted rating (default: the model's)")
	return cmd
}

func (a *app) qualityMergeCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "merge --out F.csv SHARD.csv...",
		Short: "Join shard scores into one file and report the flagged titles",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			parts := map[string][]quality.Score{}
			for _, p := range args {
				if _, dup := parts[p]; dup {
					return usageErr("%s is named twice", p)
				}
				sc, err := quality.ReadFile(p, quality.ReadScores)
				if err != nil {
					return err
				}
				parts[p] = sc
			}
			all, err := quality.Merge(parts)
			if err != nil {
				return err
			}
			if err := atomicfile.Write(out, func(w io.Writer) error { return quality.WriteScores(w, all) }); err != nil {
				return err
			}
			return a.printQualitySummary(out, all)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the merged scores CSV to write")
	return cmd
}

func (a *app) printQualitySummary(out string, scores []quality.Score) error {
	flagged := []quality.Score{}
	for _, s := range scores {
		if s.Flagged {
			flagged = append(flagged, s)
		}
	}
	if a.json() {
		return a.printJSON(struct {
			Out     string          `json:"out"`
			Titles  int             `json:"titles"`
			Flagged []quality.Score `json:"flagged"`
		}{out, len(scores), flagged})
	}
	fmt.Fprintf(a.out, "%s: %d titles scored, %d flagged\n", out, len(scores), len(flagged))
	if len(flagged) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TITLE\tSCORE\tREASONS")
	for _, s := range flagged {
		fmt.Fprintf(tw, "%s\t%.3f\t%s\n", s.Title, s.Score, strings.Join(s.Reasons, "; "))
	}
	return tw.Flush()
}

func (a *app) qualitySynthCmd() *cobra.Command {
	var out string
	var titles int
	var rated float64
	var seed uint64
	cmd := &cobra.Command{
		Use:   "synth --out DIR",
		Short: "Write synthetic signals.csv and ratings.csv (planted structure, some broken titles)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return usageErr("--out is required")
			}
			if titles < 1 || !(rated > 0 && rated <= 1) {
				return usageErr("--titles must be at least 1 and --rated in (0, 1]")
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return usageErr("--out: %v", err)
			}
			s := quality.Synthesize(titles, rated, seed)
			if err := atomicfile.Write(filepath.Join(out, "signals.csv"), func(w io.Writer) error { return quality.WriteSignals(w, s.Signals) }); err != nil {
				return err
			}
			if err := atomicfile.Write(filepath.Join(out, "ratings.csv"), func(w io.Writer) error { return quality.WriteRatings(w, s) }); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]int{"titles": titles, "rated": len(s.Ratings), "broken": len(s.Broken)})
			}
			_, err := fmt.Fprintf(a.out, "wrote %s/signals.csv (%d titles, %d with a broken signal) and ratings.csv (%d rated)\n", out, titles, len(s.Broken), len(s.Ratings))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "folder to write signals.csv and ratings.csv into")
	f.IntVar(&titles, "titles", 2000, "titles")
	f.Float64Var(&rated, "rated", 0.3, "share of titles with a human rating")
	f.Uint64Var(&seed, "seed", 1, "seed")
	return cmd
}
