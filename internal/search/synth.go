package search

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"

	"github.com/baton-ml/baton/internal/fault"
)

// SynthOptions size a synthetic data set.
type SynthOptions struct {
	Titles   int
	Members  int
	Sessions int    // searches, each with one click
	Plays    int    // plays per member in the interactions
	Seed     uint64 // the same seed gives the same data
}

// Synthetic is a catalog, members' plays and a click log with planted
// structure: members have two favourite genres and play those titles six
// times as often; a searcher clicks the title that maximizes text
// relevance + taste + popularity + Gumbel noise among the titles matching
// the query. BM25 sees only the text; a re-ranker that learns taste and
// popularity ranks the clicked titles higher.
type Synthetic struct {
	Titles       []Title
	Interactions []Interaction
	Clicks       []Click
	// Words is the vocabulary, most frequent first: queries for a bench.
	Words []string
}

// SynthGenres are the genres of synthetic titles.
var synthGenres = []string{"drama", "comedy", "thriller", "documentary", "animation", "horror",
	"romance", "scifi", "crime", "family", "reality", "sports"}

var synthSyllables = []string{"ka", "lo", "mi", "ren", "sa", "tor", "vel", "do", "ni", "par",
	"qu", "ri", "so", "tan", "ul", "ve", "wen", "xi", "yo", "zar"}

var synthMarkets = []string{"US", "GB", "BR", "IN", "JP"}

// Synthesize makes a synthetic data set (see Synthetic).
func Synthesize(o SynthOptions) Synthetic {
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	if o.Plays == 0 {
		o.Plays = 30
	}
	// 400 two-syllable words, Zipf-weighted: a frequent word is in many
	// titles' names, so its query has many matches to order.
	var words []string
	for _, a := range synthSyllables {
		for _, b := range synthSyllables {
			words = append(words, a+b)
		}
	}
	rng.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	wordCum := cumulative(len(words), func(i int) float64 { return 1 / math.Pow(float64(i+1), 0.8) })
	pick := func(cum []float64) int { return draw(rng, cum) }

	s := Synthetic{Words: words}
	genreOf := make([][]int, o.Titles)
	popW := make([]float64, o.Titles)
	base := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range o.Titles {
		ng := 1 + rng.IntN(2)
		gs := rng.Perm(len(synthGenres))[:ng]
		genreOf[i] = gs
		var gnames []string
		for _, g := range gs {
			gnames = append(gnames, synthGenres[g])
		}
		nameWords := []string{words[pick(wordCum)], words[pick(wordCum)]}
		var desc []string
		for range 6 {
			desc = append(desc, words[rng.IntN(len(words))])
		}
		var markets []string
		for _, m := range synthMarkets {
			if rng.Float64() < 0.6 {
				markets = append(markets, m)
			}
		}
		s.Titles = append(s.Titles, Title{
			ID:          fmt.Sprintf("t%05d", i),
			Name:        strings.Join(nameWords, " "),
			Genres:      gnames,
			Creator:     fmt.Sprintf("creator%03d", rng.IntN(500)),
			NewCreator:  rng.Float64() < 0.1,
			Released:    base.Add(time.Duration(rng.IntN(11*365)) * 24 * time.Hour),
			Markets:     markets,
			Description: strings.Join(desc, " "),
		})
	}
	// Popularity: Zipf over a random order of the titles.
	for r, i := range rng.Perm(o.Titles) {
		popW[i] = 1 / math.Pow(float64(r+1), 0.9)
	}
	maxLogPop := math.Log(float64(o.Titles)) // the most popular has weight 1

	favs := make([][2]int, o.Members)
	likes := func(m, t int) bool {
		return slices.Contains(genreOf[t], favs[m][0]) || slices.Contains(genreOf[t], favs[m][1])
	}
	for m := range o.Members {
		p := rng.Perm(len(synthGenres))
		favs[m] = [2]int{p[0], p[1]}
		cum := cumulative(o.Titles, func(t int) float64 {
			w := popW[t]
			if likes(m, t) {
				w *= 6
			}
			return w
		})
		for range o.Plays {
			t := pick(cum)
			s.Interactions = append(s.Interactions, Interaction{
				Member: memberID(m), Title: s.Titles[t].ID,
				TS: base.Add(time.Duration(rng.IntN(11*365*24)) * time.Hour),
			})
		}
	}

	// Which titles have a word in their name (strong) or description.
	inName := map[string][]int{}
	inDesc := map[string][]int{}
	for i, t := range s.Titles {
		for _, w := range strings.Fields(t.Name) {
			inName[w] = appendOnce(inName[w], i)
		}
		for _, w := range strings.Fields(t.Description) {
			inDesc[w] = appendOnce(inDesc[w], i)
		}
	}
	for range o.Sessions {
		m := rng.IntN(o.Members)
		q := words[pick(wordCum)]
		rel := map[int]float64{}
		for _, t := range inDesc[q] {
			rel[t] = 0.5
		}
		for _, t := range inName[q] {
			rel[t] = 1
		}
		if len(rel) < 2 {
			continue
		}
		cands := make([]int, 0, len(rel))
		for t := range rel {
			cands = append(cands, t)
		}
		slices.Sort(cands)
		best, bestU := -1, math.Inf(-1)
		for _, t := range cands {
			u := 2*rel[t] + 2*math.Log(popW[t]*float64(o.Titles))/maxLogPop - math.Log(-math.Log(rng.Float64()))
			if likes(m, t) {
				u += 2.5
			}
			if u > bestU {
				best, bestU = t, u
			}
		}
		// Shown: the clicked title and up to nine others, in random order.
		shown := []int{best}
		for _, i := range rng.Perm(len(cands)) {
			if len(shown) == 10 {
				break
			}
			if cands[i] != best {
				shown = append(shown, cands[i])
			}
		}
		rng.Shuffle(len(shown), func(i, j int) { shown[i], shown[j] = shown[j], shown[i] })
		for pos, t := range shown {
			s.Clicks = append(s.Clicks, Click{Member: memberID(m), Query: q, Title: s.Titles[t].ID, Clicked: t == best, Position: pos + 1})
		}
	}
	return s
}

func memberID(m int) string { return fmt.Sprintf("m%05d", m) }

// draw picks an index with probability proportional to its weight, cum
// being the weights' running sums: one uniform draw from r.
func draw(r *rand.Rand, cum []float64) int {
	u := r.Float64() * cum[len(cum)-1]
	i, _ := slices.BinarySearch(cum, u)
	return min(i, len(cum)-1)
}

// Queries draws search queries over a catalog the way Synthesize's
// searchers choose theirs: one word of the titles' names, the more names
// hold it the likelier (Synthesize draws queries with the weights it
// drew names with), among the words at least two names hold (a query
// one title answers has nothing to rank, and Synthesize skips those).
// Words are the terms an Index makes of the names (lower case, no stop
// words), so every query it draws retrieves what it was drawn from.
type Queries struct {
	words []string
	cum   []float64
}

// NewQueries collects the words of titles' names. A catalog whose names
// share no word is invalid input: it has no query to draw.
func NewQueries(titles []Title) (*Queries, error) {
	an := indexMapping().AnalyzerNamed(standard.Name)
	if an == nil {
		return nil, fmt.Errorf("no %s analyzer", standard.Name)
	}
	count := map[string]int{}
	for i := range titles {
		seen := map[string]bool{}
		for _, tok := range an.Analyze([]byte(titles[i].Name)) {
			w := string(tok.Term)
			if !seen[w] {
				seen[w] = true
				count[w]++
			}
		}
	}
	q := &Queries{}
	for w, n := range count {
		if n >= 2 {
			q.words = append(q.words, w)
		}
	}
	if len(q.words) == 0 {
		return nil, fault.Invalidf("catalog", "no word is in two titles' names: no query to draw")
	}
	// Most frequent first, ties by the word: the same catalog, the same
	// draws.
	slices.SortFunc(q.words, func(a, b string) int { return cmp.Or(cmp.Compare(count[b], count[a]), cmp.Compare(a, b)) })
	q.cum = cumulative(len(q.words), func(i int) float64 { return float64(count[q.words[i]]) })
	return q, nil
}

// Draw picks a query with one uniform draw from r.
func (q *Queries) Draw(r *rand.Rand) string { return q.words[draw(r, q.cum)] }

// Words are the words Draw picks from, most frequent first.
func (q *Queries) Words() []string { return slices.Clone(q.words) }

func cumulative(n int, w func(int) float64) []float64 {
	cum := make([]float64, n)
	var sum float64
	for i := range n {
		sum += w(i)
		cum[i] = sum
	}
	return cum
}

func appendOnce(s []int, v int) []int {
	if len(s) > 0 && s[len(s)-1] == v {
		return s
	}
	return append(s, v)
}
