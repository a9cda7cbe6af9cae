package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/store"
)

type featuresData struct {
	Features  []featureRow
	Sources   []feature.Source
	Freshness bool // whether the server's streaming engine answered
}

type featureRow struct {
	feature.Feature
	Fresh      *feature.Stale
	Age        string
	Last       *store.FeatureComputation
	GateStatus string
	Checks     []feature.Result
	// History is the feature's newest computations, blocked ones too,
	// with the gates' results for it: the quality over time.
	History []gateRun
}

// gateRun is one computation as the quality-over-time table shows it.
type gateRun struct {
	ID     int64
	At     time.Time
	Kind   string
	Status string
	Rows   int64
	Checks []feature.Result
	// NotNull and Mean are what the report measured of the feature ("" if
	// nothing).
	NotNull, Mean string
}

// freshAge says how old a feature's source's last event is. A negative
// age is either no event since the engine started (breached) or an event
// stamped after the server's clock (a simulated or skewed clock, as a
// baton demo home read by a server on the real clock): not "ago".
func freshAge(s feature.Stale) string {
	switch {
	case s.Age >= 0:
		return short(s.Age.Round(time.Millisecond)) + " ago"
	case s.Breached:
		return "no event yet"
	default:
		return "stamped " + short((-s.Age).Round(time.Millisecond)) + " after this server's clock"
	}
}

// historyLen is how many computations a feature's history shows.
const historyLen = 12

func (u *UI) featuresPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ctx := r.Context()
	cat, err := feature.Load(ctx, u.d.Store)
	if err != nil {
		return err
	}
	d := featuresData{}
	defs := cat.Defs()
	d.Sources = defs.Sources
	fresh := map[string]feature.Stale{}
	if u.d.Freshness != nil {
		if ss := u.d.Freshness(u.d.Now()); ss != nil {
			d.Freshness = true
			for _, s := range ss {
				fresh[s.Feature] = s
			}
		}
	}
	for _, f := range defs.Features {
		row := featureRow{Feature: f}
		if s, ok := fresh[f.Name]; ok {
			row.Fresh = &s
			row.Age = freshAge(s)
		}
		c, err := u.d.Store.LastComputation(ctx, f.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			row.Last = &c
			var rep feature.Report
			if json.Unmarshal(c.Report, &rep) == nil {
				row.GateStatus = rep.Status
				for _, ch := range rep.Checks {
					if ch.Feature == f.Name {
						row.Checks = append(row.Checks, ch)
					}
				}
			}
		}
		cs, err := u.d.Store.Computations(ctx, f.Name, historyLen)
		if err != nil {
			return err
		}
		for _, c := range cs {
			g := gateRun{ID: c.ID, At: c.CreatedAt, Kind: c.Kind, Status: c.Status, Rows: c.Rows}
			var rep feature.Report
			if json.Unmarshal(c.Report, &rep) == nil {
				for _, ch := range rep.Checks {
					if ch.Feature == f.Name {
						g.Checks = append(g.Checks, ch)
					}
				}
				if q, ok := rep.Metrics[f.Name]; ok {
					g.NotNull = fmt.Sprintf("%.3f", q.NotNullRate)
					if q.Mean != nil {
						g.Mean = fmt.Sprintf("%.4g", *q.Mean)
					}
				}
			}
			row.History = append(row.History, g)
		}
		d.Features = append(d.Features, row)
	}
	u.render(w, http.StatusOK, "features", v, "Features", d)
	return nil
}
