package rec

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/atomicfile"

	"github.com/baton-ml/baton/internal/fault"
)

// Synth configures Synthesize. Zero fields take the defaults noted.
type Synth struct {
	Seed         uint64
	Members      int // default 2000
	Titles       int // default 500
	Markets      int // default 4
	Interactions int // rows, plays and completions; default 40 per member
	Factors      int // planted latent dimensions, default 8
	Genres       int // default 12
	Days         int // the span of interactions, default 60
	// NewCreatorShare is the share of titles by new creators, default 0.15.
	NewCreatorShare float64
	// Start is the first day of interactions, default 2026-01-01 UTC.
	Start time.Time
}

// World is a synthetic service with planted tastes: member and title
// factors, per-market taste, title popularity, genres that follow the
// factors, and a completion propensity that follows different factors
// than playing does. Data is what it generated; PPlay and PComplete
// answer for any member and title, so a simulation can close the loop
// (show titles, draw plays from PPlay, retrain).
type World struct {
	Config Synth
	Data   *Dataset

	memberF []float64 // members × k
	titleF  []float64 // titles × k
	bias    []float64 // title popularity (log scale)
	quality []float64 // title completion propensity
	perm    []int     // the factor permutation completion reads
}

var marketNames = []string{"US", "GB", "BR", "IN", "JP", "DE", "FR", "MX", "KR", "ES", "CA", "AU"}

var genreNames = []string{"drama", "comedy", "thriller", "documentary", "animation", "romance",
	"horror", "scifi", "crime", "family", "reality", "fantasy", "action", "music", "history", "sports"}

// Synthesize makes a world, the same for the same config.
func Synthesize(c Synth) (*World, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Members, 2000)
	def(&c.Titles, 500)
	def(&c.Markets, 4)
	def(&c.Interactions, 40*c.Members)
	def(&c.Factors, 8)
	def(&c.Genres, 12)
	def(&c.Days, 60)
	if c.NewCreatorShare == 0 {
		c.NewCreatorShare = 0.15
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"members", c.Members}, {"titles", c.Titles}, {"markets", c.Markets}, {"interactions", c.Interactions},
		{"factors", c.Factors}, {"genres", c.Genres}, {"days", c.Days}} {
		if f.v < 1 {
			return nil, fault.Invalidf(f.name, "%d: must be at least 1", f.v)
		}
	}
	if !(c.NewCreatorShare >= 0 && c.NewCreatorShare <= 1) {
		return nil, fault.Invalidf("new_creator_share", "%g: must be in [0, 1]", c.NewCreatorShare)
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x7a57e))
	k := c.Factors
	w := &World{Config: c}
	// Scales chosen so the taste term x·y (std ≈ 1.8) outweighs the
	// popularity bias (std 1): personal models have something to find.
	const fs = 1.3
	norm := func(n int, s float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64() * s
		}
		return v
	}
	markets := make([]string, c.Markets)
	for i := range markets {
		if i < len(marketNames) {
			markets[i] = marketNames[i]
		} else {
			markets[i] = "M" + strconv.Itoa(i)
		}
	}
	marketTaste := norm(c.Markets*k, fs*0.5)
	genres := make([]string, c.Genres)
	for i := range genres {
		if i < len(genreNames) {
			genres[i] = genreNames[i]
		} else {
			genres[i] = "genre" + strconv.Itoa(i)
		}
	}
	genreDir := norm(c.Genres*k, 1)

	// Titles.
	w.titleF = norm(c.Titles*k, fs)
	w.bias = norm(c.Titles, 0.6)
	w.quality = norm(c.Titles, 1)
	start, span := c.Start.Unix(), int64(c.Days)*86400
	titles := make([]Title, c.Titles)
	creators := max(1, c.Titles/4)
	for t := range titles {
		v := w.titleF[t*k : (t+1)*k]
		// Genres: the one to three directions the title's factors point
		// along most (plus noise), so genres carry taste.
		type gs struct {
			g int
			s float64
		}
		sc := make([]gs, c.Genres)
		for g := range sc {
			sc[g] = gs{g, dot64(v, genreDir[g*k:(g+1)*k]) + rng.NormFloat64()*0.3}
		}
		sort.Slice(sc, func(a, b int) bool { return sc[a].s > sc[b].s })
		ng := 1 + rng.IntN(min(3, c.Genres))
		tg := make([]string, ng)
		for i := range ng {
			tg[i] = genres[sc[i].g]
		}
		ti := Title{ID: fmt.Sprintf("t%05d", t+1), Genres: tg}
		ti.Name = fmt.Sprintf("%s %s %d", strings.ToUpper(tg[0][:1])+tg[0][1:], nameWords[rng.IntN(len(nameWords))], t+1)
		if rng.Float64() < c.NewCreatorShare {
			ti.NewCreator = true
			ti.Creator = fmt.Sprintf("new-creator-%d", t+1)
			w.bias[t] -= 0.5 // fewer people find them: the exposure problem
		} else {
			ti.Creator = fmt.Sprintf("creator-%d", 1+rng.IntN(creators))
		}
		if rng.Float64() < 0.1 {
			ti.Released = start + rng.Int64N(span) // released during the window
		} else {
			ti.Released = start - 86400 - rng.Int64N(3*365*86400)
		}
		if c.Markets > 1 && rng.Float64() < 0.25 {
			for _, m := range markets {
				if rng.Float64() < 0.5 {
					ti.Markets = append(ti.Markets, m)
				}
			}
			if len(ti.Markets) == 0 {
				ti.Markets = []string{markets[rng.IntN(len(markets))]}
			}
		}
		titles[t] = ti
	}
	// Members: taste = their market's + their own.
	w.memberF = make([]float64, c.Members*k)
	members := make([]Member, c.Members)
	activity := make([]float64, c.Members)
	for m := range members {
		mk := rng.IntN(c.Markets)
		members[m] = Member{ID: fmt.Sprintf("m%06d", m+1), Market: markets[mk],
			Joined: start - rng.Int64N(2*365*86400)}
		for f := range k {
			w.memberF[m*k+f] = marketTaste[mk*k+f] + rng.NormFloat64()*fs*0.85
		}
		activity[m] = math.Exp(rng.NormFloat64() * 0.8)
	}
	w.perm = rng.Perm(k)
	d, err := NewDataset(titles, members)
	if err != nil {
		return nil, err
	}
	// Interactions: a member drawn by activity picks, among a few
	// candidates drawn by popularity, the one of highest taste plus
	// Gumbel noise (a softmax choice); a play is completed with
	// PComplete.
	memberCDF := cdf(activity)
	prior := make([]float64, c.Titles)
	for t := range prior {
		prior[t] = math.Exp(w.bias[t])
	}
	titleCDF := cdf(prior)
	const candidates = 64
	for d.Inter.Len() < c.Interactions {
		m := draw(rng, memberCDF)
		mkt := members[m].Market
		best, bestS := -1, math.Inf(-1)
		for range candidates {
			t := draw(rng, titleCDF)
			if !titles[t].AvailableIn(mkt) {
				continue
			}
			s := w.taste(m, t) - math.Log(-math.Log(rng.Float64()+1e-300))
			if s > bestS {
				best, bestS = t, s
			}
		}
		if best < 0 {
			continue
		}
		ts := start + rng.Int64N(span)
		if r := titles[best].Released; ts < r {
			ts = r + rng.Int64N(start+span-r)
		}
		mi, ti := int32(m), int32(best)
		mk := d.market(mkt)
		d.Inter.add(mi, ti, ts, Play, 1, mk)
		if d.Inter.Len() < c.Interactions && rng.Float64() < w.PComplete(m, best) {
			d.Inter.add(mi, ti, ts+3600, Complete, 1, mk)
		}
	}
	d.finish()
	w.Data = d
	return w, nil
}

var nameWords = []string{"Night", "River", "Signal", "Harbor", "Glass", "Echo", "Summer", "Atlas", "Paper", "Ember"}

func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func cdf(w []float64) []float64 {
	out := make([]float64, len(w))
	var s float64
	for i, v := range w {
		s += v
		out[i] = s
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

func draw(rng *rand.Rand, cdf []float64) int {
	i := sort.SearchFloat64s(cdf, rng.Float64())
	return min(i, len(cdf)-1)
}

// taste is the planted member–title affinity, the factor term.
func (w *World) taste(m, t int) float64 {
	k := w.Config.Factors
	return dot64(w.memberF[m*k:(m+1)*k], w.titleF[t*k:(t+1)*k])
}

// PPlay is the probability that member m plays title t when shown it
// (0 where t is not available in m's market): a logistic of planted
// taste and popularity.
func (w *World) PPlay(m, t int) float64 {
	if !w.Data.Titles[t].AvailableIn(w.Data.Members[m].Market) {
		return 0
	}
	return sigmoid(w.taste(m, t) + w.bias[t] - 4)
}

// PComplete is the probability that member m, having started title t,
// watches it to the end: it reads the member's factors against a
// permutation of the title's (so what one completes is not simply what
// one plays) and the title's quality.
func (w *World) PComplete(m, t int) float64 {
	k := w.Config.Factors
	var s float64
	for f := range k {
		s += w.memberF[m*k+f] * w.titleF[t*k+w.perm[f]]
	}
	return sigmoid(1.5*s + w.quality[t] - 0.5)
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// WriteCSV writes interactions.csv, catalog.csv and members.csv into dir,
// each to a temporary file renamed when complete.
func (w *World) WriteCSV(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "catalog.csv"), func(bw io.Writer) error { return WriteCatalog(bw, w.Data.Titles) }); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "members.csv"), func(bw io.Writer) error { return WriteMembers(bw, w.Data.Members) }); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "interactions.csv"), func(bw io.Writer) error { return WriteInteractions(bw, w.Data) })
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

func unixDate(ts int64) string { return time.Unix(ts, 0).UTC().Format(time.RFC3339) }

// WriteCatalog writes titles as a catalog file.
func WriteCatalog(w io.Writer, titles []Title) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("title,name,genres,creator,new_creator,released,markets\n")
	for _, t := range titles {
		fmt.Fprintf(bw, "%s,%s,%s,%s,%t,%s,%s\n", csvField(t.ID), csvField(t.Name), csvField(strings.Join(t.Genres, "|")),
			csvField(t.Creator), t.NewCreator, unixDate(t.Released), csvField(strings.Join(t.Markets, "|")))
	}
	return bw.Flush()
}

// WriteMembers writes members as a members file.
func WriteMembers(w io.Writer, members []Member) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("member,market,joined\n")
	for _, m := range members {
		j := ""
		if m.Joined != 0 {
			j = unixDate(m.Joined)
		}
		fmt.Fprintf(bw, "%s,%s,%s\n", csvField(m.ID), csvField(m.Market), j)
	}
	return bw.Flush()
}

// WriteInteractions writes d's interactions as an interactions file (ts
// in unix seconds, the faster to read back).
func WriteInteractions(w io.Writer, d *Dataset) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString("member,title,ts,event,weight,market\n")
	in := &d.Inter
	buf := make([]byte, 0, 128)
	for r := range in.Member {
		buf = buf[:0]
		buf = append(buf, csvField(d.Members[in.Member[r]].ID)...)
		buf = append(buf, ',')
		buf = append(buf, csvField(d.Titles[in.Title[r]].ID)...)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, in.TS[r], 10)
		buf = append(buf, ',')
		buf = append(buf, in.Event[r].String()...)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, float64(in.Weight[r]), 'g', -1, 32)
		buf = append(buf, ',')
		if mk := in.Market[r]; mk >= 0 {
			buf = append(buf, csvField(d.Markets[mk])...)
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}
