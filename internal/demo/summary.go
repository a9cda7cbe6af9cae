package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/monitor"
	"github.com/baton-ml/baton/internal/store"
)

// Summary is what happened, read from the store (signals, runs, models,
// experiments) and from what the simulated apps saw (engagement, served
// pages). Its keys are those of the platform contract's `baton demo -o json`.
type Summary struct {
	Seed             uint64                        `json:"seed"`
	Days             int                           `json:"days"`
	Members          int                           `json:"members"`
	Titles           int                           `json:"titles"`
	Events           int                           `json:"events"`
	Episodes         Episodes                      `json:"episodes"`
	Signals          map[string]int                `json:"signals"`
	Runs             map[string]RunCounts          `json:"runs"`
	Models           []ModelSummary                `json:"models"`
	Offline          map[string]map[string]float64 `json:"offline"`
	Online           Online                        `json:"online"`
	Experiments      []ExperimentSummary           `json:"experiments"`
	ResponsibleAI    ResponsibleAI                 `json:"responsible_ai"`
	QualityScenarios []Scenario                    `json:"quality_scenarios"`
	Engagement       []float64                     `json:"engagement_by_day"`
	WallSeconds      float64                       `json:"wall_seconds"`
}

type RunCounts struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled,omitempty"`
}

type ModelSummary struct {
	Name              string      `json:"name"`
	Versions          int         `json:"versions"`
	ProductionVersion int         `json:"production_version"`
	Promotions        []Promotion `json:"promotions"`
}

type Promotion struct {
	Version int `json:"version"`
	Day     int `json:"day"`
}

type Online struct {
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	FallbackRate float64 `json:"fallback_rate"`
	// Timeouts are requests, home or search, the model did not answer
	// within the endpoint's timeout (the fallback answered): the
	// machine's doing, so the one thing that can make two runs of one
	// seed differ.
	Timeouts           int     `json:"timeouts"`
	OutageFallbackRate float64 `json:"outage_fallback_rate"`
	P99MS              float64 `json:"p99_ms"`
	P50MS              float64 `json:"p50_ms"`
	// Search is the search endpoint's traffic; the fields above are the
	// home page's (timeouts aside).
	Search SearchOnline `json:"search"`
}

// SearchOnline is what the members' searches saw.
type SearchOnline struct {
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
	// FallbackRate is the share answered by BM25 alone (no re-ranker, or
	// it failed or timed out).
	FallbackRate float64 `json:"fallback_rate"`
	Timeouts     int     `json:"timeouts"`
	// PlaysPerSearch are the titles played from a search's hits.
	PlaysPerSearch float64 `json:"plays_per_search"`
}

type ExperimentSummary struct {
	Name      string `json:"name"`
	Status    string `json:"status"`
	Decision  string `json:"decision"`
	Reason    string `json:"reason,omitempty"`
	PausedDay int    `json:"paused_day"`
}

type ResponsibleAI struct {
	MarketQuality      map[string]float64 `json:"market_quality"`
	NewCreatorExposure float64            `json:"new_creator_exposure"`
	CatalogCoverage    float64            `json:"catalog_coverage"`
}

type Scenario struct {
	ID       string  `json:"id"`
	Target   string  `json:"target"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	Detail   string  `json:"detail"`
	Pass     bool    `json:"pass"`
	// Status is pass, fail, pending (within its deadline) or none
	// (nothing to measure yet); Monitor the scenario monitor that
	// measured it, at EvaluatedAt (simulated time).
	Status      string    `json:"status"`
	Monitor     string    `json:"monitor"`
	EvaluatedAt time.Time `json:"evaluated_at"`
}

// dayOf is the simulated day a wall time fell in (0: before the first).
func (d *Demo) dayOf(t time.Time) int {
	day := 0
	for i, s := range d.dayStarts {
		if !t.Before(s) {
			day = i + 1
		}
	}
	return day
}

func (d *Demo) summary(ctx context.Context) (Summary, error) {
	s := Summary{Seed: d.o.Seed, Days: d.o.Days, Members: len(d.w.memberOpen), Titles: len(d.w.titleOpen), Episodes: d.ep,
		Signals: map[string]int{}, Runs: map[string]RunCounts{}, Offline: map[string]map[string]float64{}}
	for _, n := range []string{"data_landed", "features_ready", "model_trained", "canary_passed", "canary_failed", "drift_detected", "experiment_paused", "feature_stale"} {
		s.Signals[n] = 0
	}
	var after int64
	paused := map[string]time.Time{}
	for {
		sigs, err := d.st.Signals(ctx, store.SignalFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			return s, err
		}
		for _, sg := range sigs {
			s.Signals[sg.Name]++
			after = sg.Seq
			if sg.Name == "experiment_paused" {
				var name string
				_ = json.Unmarshal(sg.Params["experiment"], &name)
				if _, ok := paused[name]; !ok {
					paused[name] = sg.CreatedAt
				}
			}
		}
		if len(sigs) < 1000 {
			break
		}
	}
	flows, err := d.st.Flows(ctx)
	if err != nil {
		return s, err
	}
	for _, f := range flows {
		var c RunCounts
		var before int64
		for {
			rs, err := d.st.Runs(ctx, store.RunFilter{Flow: f.Name, Limit: 1000, BeforeID: before})
			if err != nil {
				return s, err
			}
			for _, r := range rs {
				switch r.Status {
				case store.RunSucceeded:
					c.Succeeded++
				case store.RunFailed:
					c.Failed++
				case store.RunCancelled:
					c.Cancelled++
				}
				before = r.ID
			}
			if len(rs) < 1000 {
				break
			}
		}
		s.Runs[f.Name] = c
	}
	ms, err := d.st.Models(ctx)
	if err != nil {
		return s, err
	}
	for _, m := range ms {
		vs, err := d.st.ModelVersions(ctx, m.Name)
		if err != nil {
			return s, err
		}
		ml := ModelSummary{Name: m.Name, Versions: len(vs), Promotions: []Promotion{}}
		for _, v := range vs {
			if v.State == store.ModelProduction {
				ml.ProductionVersion = v.Version
			}
			trs, err := d.st.ModelTransitions(ctx, m.Name, v.Version)
			if err != nil {
				return s, err
			}
			for _, tr := range trs {
				if tr.To == store.ModelProduction {
					ml.Promotions = append(ml.Promotions, Promotion{Version: v.Version, Day: d.dayOf(tr.At)})
				}
			}
		}
		sort.Slice(ml.Promotions, func(i, j int) bool { return ml.Promotions[i].Version < ml.Promotions[j].Version })
		s.Models = append(s.Models, ml)
		// Offline: the latest version's held-out metrics, by kind.
		if len(vs) > 0 {
			latest := vs[0]
			for _, v := range vs {
				if v.Version > latest.Version {
					latest = v
				}
			}
			off := map[string]float64{}
			for k, name := range offlineMetrics {
				if x, ok := latest.Metrics[k]; ok {
					off[name] = x
				}
			}
			if len(off) > 0 {
				s.Offline[strings.TrimPrefix(m.Name, "rec-")] = off
			}
		}
	}
	exps, err := experiment.Load(ctx, d.st)
	if err != nil {
		return s, err
	}
	for _, l := range exps {
		e := ExperimentSummary{Name: l.Spec.Name, Status: string(l.Status), Reason: l.Reason}
		switch {
		case strings.HasPrefix(l.Reason, "shipped"):
			e.Decision = experiment.Shipped
		case strings.HasPrefix(l.Reason, "control kept"):
			e.Decision = experiment.KeptControl
		case strings.HasPrefix(l.Reason, "superseded"):
			e.Decision = "superseded"
		default:
			e.Decision = string(l.Status)
		}
		if at, ok := paused[l.Spec.Name]; ok {
			e.PausedDay = d.dayOf(at)
		}
		s.Experiments = append(s.Experiments, e)
	}

	// What the apps saw.
	var req, errs, fb, items, ncItems, plays, sessions, timeouts int
	var so SearchOnline
	var searchFB, searchPlays int
	for _, st := range d.stats {
		so.Requests += st.Searches
		so.Errors += st.SearchErrors
		so.Timeouts += st.SearchTimeouts
		searchFB += st.SearchFallback
		searchPlays += st.SearchPlays
		timeouts += st.Timeouts + st.SearchTimeouts
		req += st.Requests
		errs += st.Errors
		fb += st.Fallback
		items += st.Items
		ncItems += st.NewCreatorItems
		plays += st.Plays
		sessions += st.Sessions
		s.Engagement = append(s.Engagement, round(ratio(st.Plays, st.Sessions), 4))
	}
	// Events posted: each session's impression, the plays of its home
	// page and of its search.
	s.Events = plays + sessions + searchPlays
	so.FallbackRate, so.PlaysPerSearch = round(ratio(searchFB, so.Requests), 4), round(ratio(searchPlays, so.Requests), 4)
	s.Online = Online{Requests: req, Errors: errs, FallbackRate: round(ratio(fb, req), 4), Timeouts: timeouts,
		OutageFallbackRate: round(ratio(d.outage.fallback, d.outage.requests), 4),
		P99MS:              round(quantile(d.latencies, 0.99), 2), P50MS: round(quantile(d.latencies, 0.5), 2), Search: so}
	open := 0
	for _, o := range d.w.titleOpen {
		if o {
			open++
		}
	}
	s.ResponsibleAI = ResponsibleAI{MarketQuality: d.marketQuality(len(d.stats), 7), NewCreatorExposure: round(ratio(ncItems, items), 4),
		CatalogCoverage: round(ratio(len(d.served), open), 4)}
	s.QualityScenarios, err = d.scenarios(ctx)
	return s, err
}

// offlineMetrics are the registry's metrics the summary shows, by their
// name there: the recommenders' (baton rec eval) and the search
// re-ranker's (train-search.yaml: held-out MRR and NDCG@10, re-ranked and
// in BM25 order).
var offlineMetrics = map[string]string{
	"recall@10": "recall@10", "ndcg@10": "ndcg@10", "map@10": "map@10",
	"coverage@10": "coverage", "diversity@10": "diversity", "novelty@10": "novelty",
	"mrr": "mrr", "mrr_bm25": "mrr_bm25", "ndcg@10_bm25": "ndcg@10_bm25",
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// marketQuality is each market's completions per session over the n days
// ending with day last, relative to all markets'.
func (d *Demo) marketQuality(last, n int) map[string]float64 {
	comp, sess := map[string]int{}, map[string]int{}
	var c, s int
	for _, st := range d.stats {
		if st.Day <= last-n || st.Day > last {
			continue
		}
		for m, v := range st.CompletionsByMarket {
			comp[m] += v
			c += v
		}
		for m, v := range st.SessionsByMarket {
			sess[m] += v
			s += v
		}
	}
	global := ratio(c, s)
	out := map[string]float64{}
	for m := range sess {
		if global > 0 {
			out[m] = round(ratio(comp[m], sess[m])/global, 4)
		}
	}
	return out
}

// scenarios are the quality scenarios as the server measured them: each
// scenario monitor's newest result (scenarios.yaml; docs/monitors.md).
func (d *Demo) scenarios(ctx context.Context) ([]Scenario, error) {
	ms, err := monitor.LoadScenarios(ctx, d.st)
	if err != nil {
		return nil, err
	}
	out := []Scenario{}
	for _, m := range ms {
		sc := Scenario{ID: m.Spec.ID, Target: m.Spec.Target, Monitor: m.Monitor, Status: monitor.ScenarioNone, Detail: "not evaluated"}
		if m.Evaluated {
			ev := m.Evidence
			sc.Status, sc.Unit, sc.Detail, sc.EvaluatedAt = ev.Status, ev.Unit, ev.Detail, m.EvaluatedAt
			if ev.Measured != nil {
				sc.Measured = round(*ev.Measured, 4)
			}
			if m.Error != "" {
				sc.Detail += "; error: " + m.Error
			}
		}
		sc.Pass = sc.Status == monitor.ScenarioPass
		out = append(out, sc)
	}
	return out, nil
}

// Print writes the summary as tables.
func (s Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nbaton demo: %d days, %d members, %d titles, seed %d, %.0f s\n\n", s.Days, s.Members, s.Titles, s.Seed, s.WallSeconds)
	fmt.Fprintln(tw, "SIGNAL\tCOUNT")
	names := make([]string, 0, len(s.Signals))
	for n := range s.Signals {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\n", n, s.Signals[n])
	}
	fmt.Fprintln(tw, "\nFLOW\tSUCCEEDED\tFAILED")
	names = names[:0]
	for n := range s.Runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n, s.Runs[n].Succeeded, s.Runs[n].Failed)
	}
	fmt.Fprintln(tw, "\nMODEL\tVERSIONS\tPRODUCTION\tPROMOTIONS (version@day)")
	for _, m := range s.Models {
		var ps []string
		for _, p := range m.Promotions {
			ps = append(ps, fmt.Sprintf("v%d@%d", p.Version, p.Day))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", m.Name, m.Versions, m.ProductionVersion, strings.Join(ps, " "))
	}
	fmt.Fprintln(tw, "\nEXPERIMENT\tSTATUS\tDECISION\tPAUSED DAY")
	for _, e := range s.Experiments {
		paused := "-"
		if e.PausedDay > 0 {
			paused = strconv.Itoa(e.PausedDay)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Status, e.Decision, paused)
	}
	fmt.Fprintf(tw, "\nonline: %d requests, %d errors, fallback %.1f%% (outage day %.1f%%), p50 %.2f ms, p99 %.2f ms\n",
		s.Online.Requests, s.Online.Errors, 100*s.Online.FallbackRate, 100*s.Online.OutageFallbackRate, s.Online.P50MS, s.Online.P99MS)
	fmt.Fprintf(tw, "search: %d requests, %d errors, BM25 alone %.1f%%, %.2f plays a search", s.Online.Search.Requests, s.Online.Search.Errors,
		100*s.Online.Search.FallbackRate, s.Online.Search.PlaysPerSearch)
	if off, ok := s.Offline["search-rerank"]; ok {
		fmt.Fprintf(tw, "; the latest re-ranker's held-out MRR %.3f (BM25 %.3f), NDCG@10 %.3f (BM25 %.3f)", off["mrr"], off["mrr_bm25"], off["ndcg@10"], off["ndcg@10_bm25"])
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "responsible AI: catalog coverage %.3f, new creators' exposure %.3f, quality by market %v\n",
		s.ResponsibleAI.CatalogCoverage, s.ResponsibleAI.NewCreatorExposure, s.ResponsibleAI.MarketQuality)
	fmt.Fprintln(tw, "\nSCENARIO\tMEASURED BY THE SERVER\tSTATUS\tDETAIL")
	for _, q := range s.QualityScenarios {
		fmt.Fprintf(tw, "%s\t%.3f %s\t%s\t%s\n", q.ID, q.Measured, q.Unit, q.Status, q.Detail)
	}
	tw.Flush()
}
