package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/baton-ml/baton/internal/atomicfile"
	"github.com/baton-ml/baton/internal/search"
)

// searchShare is the share of sessions in which the member also types a
// query into the search box after looking at the home page.
const searchShare = 0.15

// searchEndpoint is the search box's endpoint, applied by the platform's
// train-search flow.
const searchEndpoint = "search"

// searchItems is how many hits a search page shows: the endpoint's items
// (train-search.yaml), and the history's BM25 pages alike.
const searchItems = 20

// Salts of a member's random sources on one day (world.rng): 1 decides the
// visit, 2 the response to the home page, 3 the search and its query, 4
// the response to the search page.
const (
	saltSearch  = 3
	saltClicked = 4
)

// searchTitles is the visible catalog as search reads it.
func (x *world) searchTitles() []search.Title {
	d := x.w.Data
	var out []search.Title
	for t, open := range x.titleOpen {
		if !open {
			continue
		}
		ti := d.Titles[t]
		out = append(out, search.Title{ID: ti.ID, Name: ti.Name, Genres: ti.Genres, Creator: ti.Creator, NewCreator: ti.NewCreator,
			Released: time.Unix(ti.Released, 0).UTC(), Markets: ti.Markets})
	}
	return out
}

// refreshQueries makes the members' queries those of the visible catalog
// (search.Queries: a word of the titles' names, as search's synthetic
// searchers choose theirs).
func (x *world) refreshQueries() error {
	q, err := search.NewQueries(x.searchTitles())
	if err != nil {
		return fmt.Errorf("the members' search queries: %w", err)
	}
	x.queries = q
	return nil
}

// query is what member m searches for on day, if they search: the same
// whatever order sessions run in.
func (x *world) query(day, m int) (string, bool) {
	r := x.rng(day, m, saltSearch)
	if r.Float64() >= searchShare {
		return "", false
	}
	return x.queries.Draw(r), true
}

// respondSearch is how member m responds to a page of search hits: as to
// any page (respond), a member plays what they like among what they look
// at; the titles played are the clicks. Cancelling is the home page's
// business: a search does not cancel.
func (x *world) respondSearch(day, m int, hits []string) session {
	s := x.respond(x.rng(day, m, saltClicked), m, hits)
	s.cancelled = false
	return s
}

// clickRows are one search's rows of the click log: every title shown,
// in its position, clicked when played.
func (x *world) clickRows(m int, query string, hits []string, s session) []search.Click {
	played := map[string]bool{}
	for _, e := range s.events {
		played[x.w.Data.Titles[e.title].ID] = true
	}
	out := make([]search.Click, len(hits))
	for i, t := range hits {
		out[i] = search.Click{Member: x.w.Data.Members[m].ID, Query: query, Title: t, Clicked: played[t], Position: i + 1}
	}
	return out
}

// historySearches simulates the history's searches, before baton served
// any: in a share of the history's sessions (a member's plays of a day),
// the member searched and the service answered in BM25 order (the search
// it had before a re-ranker: internal/search without a model, computed in
// this process as the history's plays are synthesized). The plays they
// led to join hist, after the session's last play; the click log is
// returned by day. They give the first re-ranker something to learn.
func (x *world) historySearches(ctx context.Context, hist map[string][]interaction) (map[string][]search.Click, error) {
	ix, err := search.NewIndex(ctx, x.searchTitles(), "")
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	bm25, err := search.NewSearcher(ix, nil, search.DefaultCandidates)
	if err != nil {
		return nil, err
	}
	pages := map[string][]string{} // BM25 order depends on the query only
	first := start.Unix()
	clicks := map[string][]search.Click{}
	days := make([]string, 0, len(hist))
	for day := range hist {
		days = append(days, day)
	}
	sort.Strings(days)
	for _, date := range days {
		t0, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return nil, err
		}
		day := int((t0.Unix() - first) / 86400) // before the first simulated day: negative
		last := map[int]int64{}
		for _, r := range hist[date] {
			last[r.member] = max(last[r.member], r.ts)
		}
		members := make([]int, 0, len(last))
		for m := range last {
			members = append(members, m)
		}
		slices.Sort(members)
		for _, m := range members {
			q, ok := x.query(day, m)
			if !ok {
				continue
			}
			page, ok := pages[q]
			if !ok {
				hits, err := bm25.Search(ctx, q, "", searchItems)
				if err != nil {
					return nil, err
				}
				for _, h := range hits {
					page = append(page, h.Title)
				}
				pages[q] = page
			}
			s := x.respondSearch(day, m, page)
			clicks[date] = append(clicks[date], x.clickRows(m, q, page, s)...)
			end := t0.Unix() + 86399
			for k, e := range s.events {
				ts := min(end, last[m]+int64(60*(k+1)))
				hist[date] = append(hist[date], interaction{member: m, title: e.title, ts: ts})
				if e.complete {
					hist[date] = append(hist[date], interaction{member: m, title: e.title, ts: min(end, ts+60), complete: true})
				}
			}
		}
	}
	return clicks, nil
}

// writeClicks writes one day of the search click log as the warehouse's
// partition clicks/DAY.csv (the format baton search train --clicks reads).
func writeClicks(dir, day string, rows []search.Click) error {
	if err := os.MkdirAll(filepath.Join(dir, "clicks"), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "clicks", day+".csv"), func(w io.Writer) error { return search.WriteClicks(w, rows) })
}
