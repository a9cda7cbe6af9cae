package demo

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/baton-ml/baton/internal/atomicfile"
	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/search"
)

// world is the simulated streaming service: members with latent tastes in
// several markets, a catalog, and how members respond to what they are
// shown (rec.World's PPlay and PComplete: planted, so a better model
// really earns more plays). Some titles and members exist from the start
// but appear only when an episode releases them.
type world struct {
	w     *rec.World
	seed  uint64
	start string // the first simulated day; history is before it
	// launchMarket is the market that opens on the launch day; its
	// members are hidden until then.
	launchMarket string
	// expansion are the titles released on the expansion day.
	expansion map[int]bool
	// titleOpen, memberOpen: visible now.
	titleOpen  []bool
	memberOpen []bool
	cancelled  []bool
	activity   []float64
	titleIdx   map[string]int
	memberIdx  map[string]int
	// queries are what members type into the search box: words of the
	// visible titles' names.
	queries *search.Queries
}

// newWorld synthesizes members members (a fifth of them in the market that
// launches later) and titles+expansion titles, with history days of
// interactions before start among the visible ones.
func newWorld(seed uint64, members, titles, expansion, historyDays int, start time.Time) (*world, error) {
	w, err := rec.Synthesize(rec.Synth{Seed: seed, Members: members, Titles: titles + expansion, Markets: 5,
		Interactions: 30 * members, Days: historyDays, Start: start.AddDate(0, 0, -historyDays)})
	if err != nil {
		return nil, err
	}
	d := w.Data
	x := &world{w: w, seed: seed, start: start.Format(time.DateOnly), launchMarket: launchMarket, expansion: map[int]bool{},
		titleOpen: make([]bool, len(d.Titles)), memberOpen: make([]bool, len(d.Members)), cancelled: make([]bool, len(d.Members)),
		activity: make([]float64, len(d.Members)), titleIdx: map[string]int{}, memberIdx: map[string]int{}}
	for t := range d.Titles {
		x.titleIdx[d.Titles[t].ID] = t
		x.titleOpen[t] = t < titles
		if t >= titles {
			x.expansion[t] = true
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0xac71))
	for m := range d.Members {
		x.memberIdx[d.Members[m].ID] = m
		x.memberOpen[m] = d.Members[m].Market != x.launchMarket
		// Daily visit probability: most members come a few times a week.
		x.activity[m] = math.Min(0.9, 0.15+0.5*rng.ExpFloat64()*0.6)
	}
	if err := x.refreshQueries(); err != nil {
		return nil, err
	}
	return x, nil
}

// launchMarket is the market that opens during the demo: the fifth of
// the five Synthesize names (US, GB, BR, IN, JP).
const launchMarket = "JP"

// history is the synthesized interactions among visible titles and
// members, by day (YYYY-MM-DD).
func (x *world) history() map[string][]interaction {
	d := x.w.Data
	in := &d.Inter
	out := map[string][]interaction{}
	for r := range in.Member {
		m, t := int(in.Member[r]), int(in.Title[r])
		if !x.memberOpen[m] || !x.titleOpen[t] {
			continue
		}
		day := time.Unix(in.TS[r], 0).UTC().Format(time.DateOnly)
		if day >= x.start {
			continue
		}
		out[day] = append(out[day], interaction{member: m, title: t, ts: in.TS[r], complete: in.Event[r] == rec.Complete})
	}
	return out
}

// interaction is one row of the interactions table.
type interaction struct {
	member, title int
	ts            int64
	complete      bool
}

// rng is the random source of one member on one day: the same whatever
// order sessions run in.
func (x *world) rng(day, member int, salt uint64) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d", day, member, salt)
	return rand.New(rand.NewPCG(x.seed, h.Sum64()))
}

// session is what one member did with one page.
type session struct {
	plays, completions, errors, support int
	minutes                             float64
	events                              []playEvent
	cancelled                           bool
}

type playEvent struct {
	title    int
	minutes  float64
	complete bool
}

// respond simulates a member looking at a page: titles are examined in
// page order, each less likely than the last to be looked at; an examined
// title is played with PPlay (0 where it is not available in the member's
// market: a playback error, which sometimes becomes a support contact)
// and completed with PComplete. A member who found nothing to watch may
// cancel.
func (x *world) respond(r *rand.Rand, m int, titles []string) session {
	var s session
	played := map[int]bool{}
	member := &x.w.Data.Members[m]
	for i, id := range titles {
		t, ok := x.titleIdx[id]
		if !ok || played[t] {
			continue
		}
		if r.Float64() > 0.92*math.Pow(0.93, float64(i)) {
			continue
		}
		if !x.w.Data.Titles[t].AvailableIn(member.Market) || !x.titleOpen[t] {
			// Shown, but it does not play here: the member tried anyway
			// about a third of the time.
			if r.Float64() < 0.35 {
				s.errors++
				if r.Float64() < 0.3 {
					s.support++
				}
			}
			continue
		}
		if r.Float64() >= 0.5*x.w.PPlay(m, t) {
			continue
		}
		played[t] = true
		done := r.Float64() < x.w.PComplete(m, t)
		mins := 5 + 25*r.Float64()
		if done {
			mins = 40 + 60*r.Float64()
			s.completions++
		}
		s.plays++
		s.minutes += mins
		s.events = append(s.events, playEvent{title: t, minutes: mins, complete: done})
		if len(s.events) >= 8 {
			break
		}
	}
	p := 0.0015
	if s.plays == 0 {
		p += 0.004
	}
	p += 0.02 * float64(s.errors)
	s.cancelled = r.Float64() < p
	return s
}

// writeTables writes the warehouse's catalog and members tables as they
// are now (visible titles and members).
func (x *world) writeTables(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "interactions"), 0o755); err != nil {
		return err
	}
	d := x.w.Data
	var titles []rec.Title
	for t, open := range x.titleOpen {
		if open {
			titles = append(titles, d.Titles[t])
		}
	}
	var members []rec.Member
	for m, open := range x.memberOpen {
		if open {
			members = append(members, d.Members[m])
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, "catalog.csv"), func(w io.Writer) error { return rec.WriteCatalog(w, titles) }); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "members.csv"), func(w io.Writer) error { return rec.WriteMembers(w, members) })
}

// writePartition writes one day of interactions as the warehouse's
// partition interactions/DAY.csv.
func (x *world) writePartition(dir, day string, rows []interaction) error {
	d := x.w.Data
	return atomicfile.Write(filepath.Join(dir, "interactions", day+".csv"), func(w io.Writer) error {
		buf := []byte("member,title,ts,event,weight,market\n")
		for _, r := range rows {
			ev := "play"
			if r.complete {
				ev = "complete"
			}
			buf = append(buf, d.Members[r.member].ID...)
			buf = append(buf, ',')
			buf = append(buf, d.Titles[r.title].ID...)
			buf = append(buf, ',')
			buf = strconv.AppendInt(buf, r.ts, 10)
			buf = append(buf, ',')
			buf = append(buf, ev...)
			buf = append(buf, ",1,"...)
			buf = append(buf, d.Members[r.member].Market...)
			buf = append(buf, '\n')
		}
		_, err := w.Write(buf)
		return err
	})
}
