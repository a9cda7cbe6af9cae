package ui

import (
	"context"
	"fmt"
	"html"
	"html/template"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/baton-ml/baton/internal/fault"
)

// Colours of a status, shared by the graphs and the style sheet.
var statusFill = map[string]string{
	"succeeded": "#c6ebc9",
	"running":   "#bcdcff",
	"failed":    "#f6c1c1",
	"cancelled": "#ead9b9",
	"skipped":   "#f0f0f0",
	"waiting":   "#fff0b3",
	"pending":   "#ffffff",
}

// Graph is a directed graph to lay out: nodes in order, edges by name.
type Graph struct {
	// Key identifies what is drawn (e.g. flow, version and the statuses):
	// equal keys draw the same picture, so it is drawn once.
	Key     string
	RankDir string // "LR" (default) or "TB"
	Nodes   []Node
	Edges   [][2]string
	// EdgeLabels, when set, holds a label per edge.
	EdgeLabels []string
}

// Node is one box.
type Node struct {
	ID     string
	Label  string // lines separated by \n
	Status string // colours the box
	URL    string // where a click goes; "" for none
	Bold   bool
}

// maxDrawn bounds the boxes plus edge bends of one drawing: the layout is
// quadratic at worst in them, and a page asks for it in its request.
const maxDrawn = 20000

// dagCache lays graphs out (layout below, plain Go) and keeps the SVG of the
// last few: a live run page asks again each time a count changes, and
// most asks repeat one.
type dagCache struct {
	mu   sync.Mutex
	max  int
	svgs map[string]template.HTML
}

func newDAGCache(max int) *dagCache {
	return &dagCache{max: max, svgs: map[string]template.HTML{}}
}

// SVG returns g drawn as an inline SVG element.
func (c *dagCache) SVG(ctx context.Context, g Graph) (template.HTML, error) {
	c.mu.Lock()
	if s, ok := c.svgs[g.Key]; ok && g.Key != "" {
		c.mu.Unlock()
		return s, nil
	}
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	l, err := layout(g)
	if err != nil {
		return "", err
	}
	// Every user string goes through esc (html.EscapeString) on its way
	// into the markup, and URLs are limited to this site or http(s).
	s := template.HTML(l.svg()) //nolint:gosec // built from escaped values
	if g.Key != "" {
		c.mu.Lock()
		if len(c.svgs) >= c.max {
			clear(c.svgs)
		}
		c.svgs[g.Key] = s
		c.mu.Unlock()
	}
	return s, nil
}

// Sizes, in SVG user units (px), close to what graphviz drew before.
const (
	fontSize      = 11.0
	labelFontSize = 9.0
	lineHeight    = 13.0
	padMain       = 11.0 // text to box side
	padCross      = 6.0  // text to box top and bottom
	minBoxW       = 54.0
	minBoxH       = 32.0
	nodeSep       = 18.0 // between boxes of a layer
	dummySep      = 8.0  // between edge bends of a layer
	dummySize     = 4.0
	rankSep       = 36.0 // between layers
	arrowLen      = 7.0
	margin        = 4.0
)

// textWidth estimates the width of s in Helvetica at size px from the
// font's advance widths grouped coarsely; the browser draws the text, so
// an estimate a little wide is safe (the box has padding).
func textWidth(s string, size float64) float64 {
	w := 0.0
	for _, r := range s {
		switch {
		case strings.ContainsRune("ijl.,:;'|!` ", r):
			w += 0.28
		case strings.ContainsRune("frt()[]{}-/\"", r):
			w += 0.36
		case r == 'm' || r == 'w' || r == 'M' || r == 'W' || r == '@' || r == '%':
			w += 0.88
		case r >= 'A' && r <= 'Z':
			w += 0.70
		case r < 128:
			w += 0.56
		case unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hangul, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r):
			w += 1.0
		default:
			w += 0.62
		}
	}
	return w * size
}

// clean makes s printable in XML: control characters would make the
// document invalid, so they become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
}

func esc(s string) string { return html.EscapeString(clean(s)) }

// safeURL keeps links on this site or to http(s); anything else (a
// javascript: URL) is dropped rather than drawn.
func safeURL(u string) string {
	switch {
	case strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//"):
	case strings.HasPrefix(u, "https://"), strings.HasPrefix(u, "http://"):
	default:
		return ""
	}
	return u
}

// pt is a point in layout coordinates: main runs along the layers (left
// to right, or top to bottom), cross across them.
type pt struct{ main, cross float64 }

type lnode struct {
	node        Node
	lines       []string
	w, h        float64 // box size on the page
	main, cross float64 // box size along and across the layers
	layer       int
	pos         float64 // centre across the layers
	dummy       bool
	order       int
	up, down    []int // neighbours in the layer before and after
}

type ledge struct {
	chain    []int // layered direction: chain[0] is in the lowest layer
	reversed bool  // drawn against the chain (a back edge of a cycle)
	label    string
	self     bool
	from, to int // ports decided later
	pts      []pt
}

type laidOut struct {
	tb     bool
	nodes  []*lnode
	real   int
	edges  []*ledge
	layers [][]int
	center []float64 // per layer, along main
	extent []float64 // per layer, the biggest box along main
	gapLbl []float64 // per gap after a layer, the biggest label along main
}

// layout places g's boxes by a layered (Sugiyama) method: cycles broken
// by reversing back edges, longest-path layers, barycenter sweeps for the
// order within a layer, positions across the layers by an isotonic fit
// to the neighbours' mean, edges as cubic Béziers through their bends.
func layout(g Graph) (*laidOut, error) {
	l := &laidOut{tb: g.RankDir == "TB"}
	index := map[string]int{}
	add := func(n Node) int {
		if i, ok := index[n.ID]; ok {
			return i
		}
		index[n.ID] = len(l.nodes)
		ln := &lnode{node: n}
		ln.lines = strings.Split(n.Label, "\n")
		if n.Label == "" {
			ln.lines = []string{n.ID}
		}
		tw := 0.0
		for _, s := range ln.lines {
			tw = max(tw, textWidth(s, fontSize))
		}
		ln.w = max(minBoxW, tw+2*padMain)
		ln.h = max(minBoxH, float64(len(ln.lines))*lineHeight+2*padCross)
		l.nodes = append(l.nodes, ln)
		return index[n.ID]
	}
	for _, n := range g.Nodes {
		add(n)
	}
	// An edge may name a node not listed (a need of a step the run does
	// not show): it is drawn as a plain box, as graphviz did.
	type edge struct {
		from, to int
		label    string
	}
	var es []edge
	for i, e := range g.Edges {
		lbl := ""
		if i < len(g.EdgeLabels) {
			lbl = g.EdgeLabels[i]
		}
		es = append(es, edge{add(Node{ID: e[0], Label: e[0]}), add(Node{ID: e[1], Label: e[1]}), lbl})
	}
	l.real = len(l.nodes)
	n := l.real
	if n+len(es) > maxDrawn {
		return nil, fault.Errorf(fault.TooLarge, "graph too large to draw: %d boxes and %d edges (at most %d)", n, len(es), maxDrawn)
	}

	// Break cycles: an edge to a node still on the depth-first stack is
	// laid out reversed.
	out := make([][]int, n)
	for i, e := range es {
		if e.from != e.to {
			out[e.from] = append(out[e.from], i)
		}
	}
	state := make([]uint8, n) // 0 new, 1 on stack, 2 done
	rev := make([]bool, len(es))
	type frame struct{ v, next int }
	for s := 0; s < n; s++ {
		if state[s] != 0 {
			continue
		}
		stack := []frame{{s, 0}}
		state[s] = 1
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.next == len(out[f.v]) {
				state[f.v] = 2
				stack = stack[:len(stack)-1]
				continue
			}
			ei := out[f.v][f.next]
			f.next++
			switch w := es[ei].to; state[w] {
			case 1:
				rev[ei] = true
			case 0:
				state[w] = 1
				stack = append(stack, frame{w, 0})
			}
		}
	}

	// Longest-path layers over the acyclic edges (Kahn's order).
	succ := make([][]int, n)
	pred := make([][]int, n)
	indeg := make([]int, n)
	for i, e := range es {
		if e.from == e.to {
			continue
		}
		a, b := e.from, e.to
		if rev[i] {
			a, b = b, a
		}
		succ[a] = append(succ[a], b)
		pred[b] = append(pred[b], a)
		indeg[b]++
	}
	var topo []int
	for v := 0; v < n; v++ {
		if indeg[v] == 0 {
			topo = append(topo, v)
		}
	}
	for i := 0; i < len(topo); i++ {
		for _, w := range succ[topo[i]] {
			if indeg[w]--; indeg[w] == 0 {
				topo = append(topo, w)
			}
		}
	}
	for _, v := range topo {
		for _, w := range succ[v] {
			l.nodes[w].layer = max(l.nodes[w].layer, l.nodes[v].layer+1)
		}
	}
	// A source sits just before its first successor, not at the far
	// left, so its edges stay short.
	for i := len(topo) - 1; i >= 0; i-- {
		v := topo[i]
		if len(pred[v]) > 0 || len(succ[v]) == 0 {
			continue
		}
		m := -1
		for _, w := range succ[v] {
			if m < 0 || l.nodes[w].layer < m {
				m = l.nodes[w].layer
			}
		}
		l.nodes[v].layer = m - 1
	}
	nl := 0
	for _, ln := range l.nodes {
		nl = max(nl, ln.layer+1)
	}

	// Chains through one bend per layer crossed.
	for i, e := range es {
		le := &ledge{reversed: rev[i], label: e.label}
		if e.from == e.to {
			le.self = true
			le.chain = []int{e.from}
			l.edges = append(l.edges, le)
			continue
		}
		a, b := e.from, e.to
		if rev[i] {
			a, b = b, a
		}
		le.chain = []int{a}
		for k := l.nodes[a].layer + 1; k < l.nodes[b].layer; k++ {
			if len(l.nodes) >= maxDrawn {
				return nil, fault.Errorf(fault.TooLarge, "graph too large to draw: its edges cross more than %d layers in all", maxDrawn)
			}
			l.nodes = append(l.nodes, &lnode{dummy: true, layer: k, w: dummySize, h: dummySize})
			le.chain = append(le.chain, len(l.nodes)-1)
		}
		le.chain = append(le.chain, b)
		for k := 1; k < len(le.chain); k++ {
			u, v := le.chain[k-1], le.chain[k]
			l.nodes[u].down = append(l.nodes[u].down, v)
			l.nodes[v].up = append(l.nodes[v].up, u)
		}
		l.edges = append(l.edges, le)
	}
	for _, ln := range l.nodes {
		if l.tb {
			ln.main, ln.cross = ln.h, ln.w
		} else {
			ln.main, ln.cross = ln.w, ln.h
		}
	}
	l.layers = make([][]int, nl)
	// The first order is the nodes' own, which keeps the caller's order
	// (a flow's steps as written) when nothing crosses.
	for i, ln := range l.nodes {
		ln.order = len(l.layers[ln.layer])
		l.layers[ln.layer] = append(l.layers[ln.layer], i)
	}
	l.order()
	l.place()
	l.route()
	return l, nil
}

// order runs barycenter sweeps, down then up, and keeps the order with
// the fewest crossings seen.
func (l *laidOut) order() {
	best := l.crossings()
	saved := l.saveOrder()
	for it := 0; it < 12 && best > 0; it++ {
		if it%2 == 0 {
			for k := 1; k < len(l.layers); k++ {
				l.sortLayer(k, true)
			}
		} else {
			for k := len(l.layers) - 2; k >= 0; k-- {
				l.sortLayer(k, false)
			}
		}
		if c := l.crossings(); c < best {
			best, saved = c, l.saveOrder()
		}
	}
	for k, layer := range saved {
		l.layers[k] = layer
		for i, v := range layer {
			l.nodes[v].order = i
		}
	}
}

func (l *laidOut) saveOrder() [][]int {
	s := make([][]int, len(l.layers))
	for k, layer := range l.layers {
		s[k] = append([]int(nil), layer...)
	}
	return s
}

func (l *laidOut) sortLayer(k int, byUp bool) {
	layer := l.layers[k]
	bary := make(map[int]float64, len(layer))
	for _, v := range layer {
		nb := l.nodes[v].down
		if byUp {
			nb = l.nodes[v].up
		}
		if len(nb) == 0 {
			bary[v] = float64(l.nodes[v].order)
			continue
		}
		s := 0.0
		for _, w := range nb {
			s += float64(l.nodes[w].order)
		}
		bary[v] = s / float64(len(nb))
	}
	sort.SliceStable(layer, func(i, j int) bool { return bary[layer[i]] < bary[layer[j]] })
	for i, v := range layer {
		l.nodes[v].order = i
	}
}

// crossings counts the edge crossings between each pair of layers as the
// inversions of the lower ends once sorted by the upper ends.
func (l *laidOut) crossings() int {
	total := 0
	for k := 0; k+1 < len(l.layers); k++ {
		var ends [][2]int
		for _, v := range l.layers[k] {
			for _, w := range l.nodes[v].down {
				ends = append(ends, [2]int{l.nodes[v].order, l.nodes[w].order})
			}
		}
		sort.Slice(ends, func(i, j int) bool {
			if ends[i][0] != ends[j][0] {
				return ends[i][0] < ends[j][0]
			}
			return ends[i][1] < ends[j][1]
		})
		seq := make([]int, len(ends))
		for i, e := range ends {
			seq[i] = e[1]
		}
		total += inversions(seq, make([]int, len(seq)))
	}
	return total
}

func inversions(a, tmp []int) int {
	if len(a) < 2 {
		return 0
	}
	m := len(a) / 2
	c := inversions(a[:m], tmp[:m]) + inversions(a[m:], tmp[m:])
	i, j, k := 0, m, 0
	for i < m && j < len(a) {
		if a[j] < a[i] {
			c += m - i
			tmp[k] = a[j]
			j++
		} else {
			tmp[k] = a[i]
			i++
		}
		k++
	}
	k += copy(tmp[k:], a[i:m])
	copy(tmp[k:], a[j:])
	copy(a, tmp[:len(a)])
	return c
}

// place sets the layers along main, wide enough for their boxes and the
// edge labels between them, and each box across: packed first, then
// pulled toward the mean of its neighbours, keeping order and gaps.
func (l *laidOut) place() {
	nl := len(l.layers)
	l.extent = make([]float64, nl)
	l.gapLbl = make([]float64, nl)
	for _, ln := range l.nodes {
		l.extent[ln.layer] = max(l.extent[ln.layer], ln.main)
	}
	for _, e := range l.edges {
		if e.label == "" || e.self {
			continue
		}
		k := l.nodes[e.chain[0]].layer
		if l.tb {
			l.gapLbl[k] = max(l.gapLbl[k], labelFontSize+8)
		} else {
			l.gapLbl[k] = max(l.gapLbl[k], textWidth(e.label, labelFontSize)+16)
		}
	}
	l.center = make([]float64, nl)
	at := 0.0
	for k := 0; k < nl; k++ {
		l.center[k] = at + l.extent[k]/2
		at += l.extent[k] + max(rankSep, l.gapLbl[k])
	}
	sep := func(a, b *lnode) float64 {
		s := nodeSep
		if a.dummy || b.dummy {
			s = dummySep
		}
		return (a.cross+b.cross)/2 + s
	}
	for _, layer := range l.layers {
		p := 0.0
		for i, v := range layer {
			if i > 0 {
				p += sep(l.nodes[layer[i-1]], l.nodes[v])
			}
			l.nodes[v].pos = p
		}
		for _, v := range layer {
			l.nodes[v].pos -= p / 2
		}
	}
	fit := func(k int, use func(*lnode) []int) {
		layer := l.layers[k]
		want := make([]float64, len(layer))
		gaps := make([]float64, len(layer))
		for i, v := range layer {
			ln := l.nodes[v]
			want[i] = ln.pos
			if nb := use(ln); len(nb) > 0 {
				s := 0.0
				for _, w := range nb {
					s += l.nodes[w].pos
				}
				want[i] = s / float64(len(nb))
			}
			if i > 0 {
				gaps[i] = sep(l.nodes[layer[i-1]], ln)
			}
		}
		for i, p := range isotonic(want, gaps) {
			l.nodes[layer[i]].pos = p
		}
	}
	up := func(n *lnode) []int { return n.up }
	down := func(n *lnode) []int { return n.down }
	both := func(n *lnode) []int { return append(append([]int(nil), n.up...), n.down...) }
	for it := 0; it < 6; it++ {
		for k := 1; k < nl; k++ {
			fit(k, up)
		}
		for k := nl - 2; k >= 0; k-- {
			fit(k, down)
		}
	}
	for k := 0; k < nl; k++ {
		fit(k, both)
	}
}

// isotonic returns the positions nearest (least squares) to want that
// keep the order with at least gaps[i] between i-1 and i: shifted by the
// running gaps the problem is a monotone regression, solved by pooling
// adjacent violators.
func isotonic(want, gaps []float64) []float64 {
	off := make([]float64, len(want))
	for i := 1; i < len(want); i++ {
		off[i] = off[i-1] + gaps[i]
	}
	type block struct {
		sum float64
		n   int
	}
	var bs []block
	for i, w := range want {
		bs = append(bs, block{w - off[i], 1})
		for len(bs) > 1 {
			a, b := bs[len(bs)-2], bs[len(bs)-1]
			if a.sum/float64(a.n) <= b.sum/float64(b.n) {
				break
			}
			bs = append(bs[:len(bs)-2], block{a.sum + b.sum, a.n + b.n})
		}
	}
	out := make([]float64, 0, len(want))
	for _, b := range bs {
		for j := 0; j < b.n; j++ {
			out = append(out, b.sum/float64(b.n)+off[len(out)])
		}
	}
	return out
}

// route turns each chain into points: out of the source's far side, level
// through each bend's layer, into the target's near side. The ends of the
// edges at one side of a box are spread across it in the order of where
// they go, so they do not meet in one point.
func (l *laidOut) route() {
	type port struct {
		edge   *ledge
		toward float64
		start  bool
	}
	ports := map[int][]port{}
	for _, e := range l.edges {
		if e.self {
			continue
		}
		a, b := e.chain[0], e.chain[len(e.chain)-1]
		ports[2*a+1] = append(ports[2*a+1], port{e, l.nodes[e.chain[1]].pos, true})
		ports[2*b] = append(ports[2*b], port{e, l.nodes[e.chain[len(e.chain)-2]].pos, false})
	}
	at := map[*ledge][2]float64{}
	for side, ps := range ports {
		ln := l.nodes[side/2]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].toward < ps[j].toward })
		span := min(ln.cross*0.6, float64(len(ps)-1)*8)
		for i, p := range ps {
			c := ln.pos
			if len(ps) > 1 {
				c += (float64(i)/float64(len(ps)-1) - 0.5) * span
			}
			v := at[p.edge]
			if p.start {
				v[0] = c
			} else {
				v[1] = c
			}
			at[p.edge] = v
		}
	}
	for _, e := range l.edges {
		if e.self {
			continue
		}
		a, b := l.nodes[e.chain[0]], l.nodes[e.chain[len(e.chain)-1]]
		e.pts = []pt{{l.center[a.layer] + a.main/2, at[e][0]}}
		for _, d := range e.chain[1 : len(e.chain)-1] {
			dn := l.nodes[d]
			c, x := l.center[dn.layer], l.extent[dn.layer]/2
			e.pts = append(e.pts, pt{c - x, dn.pos}, pt{c + x, dn.pos})
		}
		e.pts = append(e.pts, pt{l.center[b.layer] - b.main/2, at[e][1]})
		if e.reversed {
			for i, j := 0, len(e.pts)-1; i < j; i, j = i+1, j-1 {
				e.pts[i], e.pts[j] = e.pts[j], e.pts[i]
			}
		}
	}
}

// xy maps a layout point to the page.
func (l *laidOut) xy(p pt) (float64, float64) {
	if l.tb {
		return p.cross, p.main
	}
	return p.main, p.cross
}

type box struct{ x0, y0, x1, y1 float64 }

func (b *box) add(x, y float64) {
	b.x0, b.y0, b.x1, b.y1 = min(b.x0, x), min(b.y0, y), max(b.x1, x), max(b.y1, y)
}

type edgeLabel struct {
	text        string
	x, y        float64
	anchor      string
	cross, size float64
	gap         int
}

// svg writes the drawing: edges first so the boxes sit on top, each box
// a rounded path (the style sheet outlines a focused link's path) with a
// title, its lines and its link.
func (l *laidOut) svg() string {
	bb := box{1e18, 1e18, -1e18, -1e18}
	var edges strings.Builder
	var labels []edgeLabel
	for _, e := range l.edges {
		edges.WriteString(`<g class="edge">`)
		if e.self {
			// A loop on the box's side across the layers, where the
			// gap to the next box leaves room and no layer edge runs.
			ln := l.nodes[e.chain[0]]
			c, side := l.center[ln.layer], ln.pos+ln.cross/2
			x0, y0 := l.xy(pt{c - 8, side})
			c1x, c1y := l.xy(pt{c - 8, side + 14})
			c2x, c2y := l.xy(pt{c + 8, side + 14})
			x1, y1 := l.xy(pt{c + 8, side + arrowLen})
			tipx, tipy := l.xy(pt{c + 8, side})
			dx, dy := l.xy(pt{0, -1})
			edges.WriteString(arrow(tipx, tipy, dx, dy))
			fmt.Fprintf(&edges, `<path fill="none" stroke="#98a2b3" d="M%.1f,%.1fC%.1f,%.1f %.1f,%.1f %.1f,%.1f"/>`, x0, y0, c1x, c1y, c2x, c2y, x1, y1)
			bx, by := l.xy(pt{c + 8, side + 16})
			bb.add(bx, by)
			tx, ty := l.xy(pt{c + 12, side + 12})
			if e.label != "" {
				labels = append(labels, edgeLabel{text: e.label, x: tx, y: ty, anchor: "start", gap: -1})
			}
			edges.WriteString("</g>\n")
			continue
		}
		pts := e.pts
		last, prev := pts[len(pts)-1], pts[len(pts)-2]
		dir := 1.0
		if last.main < prev.main {
			dir = -1
		}
		tip := last
		pts[len(pts)-1].main -= dir * arrowLen
		var d strings.Builder
		x, y := l.xy(pts[0])
		fmt.Fprintf(&d, "M%.1f,%.1f", x, y)
		bb.add(x, y)
		for i := 1; i < len(pts); i++ {
			p, q := pts[i-1], pts[i]
			qx, qy := l.xy(q)
			bb.add(qx, qy)
			if p.cross == q.cross {
				fmt.Fprintf(&d, "L%.1f,%.1f", qx, qy)
				continue
			}
			m := (p.main + q.main) / 2
			c1x, c1y := l.xy(pt{m, p.cross})
			c2x, c2y := l.xy(pt{m, q.cross})
			fmt.Fprintf(&d, "C%.1f,%.1f %.1f,%.1f %.1f,%.1f", c1x, c1y, c2x, c2y, qx, qy)
		}
		fmt.Fprintf(&edges, `<path fill="none" stroke="#98a2b3" d="%s"/>`, d.String())
		tx, ty := l.xy(tip)
		dx, dy := l.xy(pt{dir, 0})
		edges.WriteString(arrow(tx, ty, dx, dy))
		edges.WriteString("</g>\n")
		if e.label != "" {
			// On the first stretch between layers of the chain, just
			// beside the curve's middle.
			k := l.nodes[e.chain[0]].layer
			a, b := e.pts[0], e.pts[1]
			if e.reversed {
				a, b = e.pts[len(e.pts)-1], e.pts[len(e.pts)-2]
			}
			m := pt{l.center[k] + l.extent[k]/2 + max(rankSep, l.gapLbl[k])/2, (a.cross + b.cross) / 2}
			lb := edgeLabel{text: e.label, gap: k, cross: m.cross}
			if l.tb {
				lb.x, lb.y, lb.anchor = m.cross+4, m.main+3, "start"
				lb.size = labelFontSize + 2
			} else {
				lb.x, lb.y, lb.anchor = m.main, m.cross-3, "middle"
				lb.size = labelFontSize + 3
			}
			labels = append(labels, lb)
		}
	}
	// Labels in one gap are pushed apart so none covers another.
	sort.SliceStable(labels, func(i, j int) bool {
		if labels[i].gap != labels[j].gap {
			return labels[i].gap < labels[j].gap
		}
		return labels[i].cross < labels[j].cross
	})
	for i := 1; i < len(labels); i++ {
		a, b := &labels[i-1], &labels[i]
		if a.gap < 0 || a.gap != b.gap || b.cross-a.cross >= a.size {
			continue
		}
		shift := a.size - (b.cross - a.cross)
		b.cross += shift
		if l.tb {
			b.x += shift
		} else {
			b.y += shift
		}
	}
	var text strings.Builder
	for _, lb := range labels {
		w := textWidth(lb.text, labelFontSize)
		x0 := lb.x
		if lb.anchor == "middle" {
			x0 -= w / 2
		}
		bb.add(x0, lb.y-labelFontSize)
		bb.add(x0+w, lb.y+3)
		fmt.Fprintf(&text, `<text class="elabel" text-anchor="%s" x="%.1f" y="%.1f" font-family="Helvetica,Arial,sans-serif" font-size="9" fill="#475467">%s</text>`+"\n",
			lb.anchor, lb.x, lb.y, esc(lb.text))
	}
	var nodes strings.Builder
	for _, ln := range l.nodes[:l.real] {
		cx, cy := l.xy(pt{l.center[ln.layer], ln.pos})
		x0, y0 := cx-ln.w/2, cy-ln.h/2
		bb.add(x0, y0)
		bb.add(x0+ln.w, y0+ln.h)
		fill := statusFill[ln.node.Status]
		if fill == "" {
			fill = "#ffffff"
		}
		stroke, width := "#667085", 1.2
		if ln.node.Bold {
			stroke, width = "#1d2939", 2.5
		}
		fmt.Fprintf(&nodes, `<g class="node st-%s"><title>%s</title>`, esc(ln.node.Status), esc(ln.node.ID))
		u := safeURL(ln.node.URL)
		if u != "" {
			fmt.Fprintf(&nodes, `<a href="%s" xlink:href="%s" target="_top">`, esc(u), esc(u))
		}
		fmt.Fprintf(&nodes, `<path fill="%s" stroke="%s" stroke-width="%.1f" d="%s"/>`, fill, stroke, width, rounded(x0, y0, ln.w, ln.h, 5))
		top := cy - float64(len(ln.lines))*lineHeight/2 + lineHeight - 3
		for i, s := range ln.lines {
			fmt.Fprintf(&nodes, `<text text-anchor="middle" x="%.1f" y="%.1f" font-family="Helvetica,Arial,sans-serif" font-size="11" fill="#101828">%s</text>`,
				cx, top+float64(i)*lineHeight, esc(s))
		}
		if u != "" {
			nodes.WriteString("</a>")
		}
		nodes.WriteString("</g>\n")
	}
	if bb.x0 > bb.x1 {
		bb = box{}
	}
	w, h := bb.x1-bb.x0+2*margin, bb.y1-bb.y0+2*margin
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="%.0fpt" height="%.0fpt" viewBox="0 0 %.0f %.0f" role="img">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<g class="graph" transform="translate(%.1f %.1f)">`+"\n", margin-bb.x0, margin-bb.y0)
	b.WriteString(edges.String())
	b.WriteString(text.String())
	b.WriteString(nodes.String())
	b.WriteString("</g>\n</svg>")
	return b.String()
}

// arrow is an arrowhead with its tip at (x, y) pointing along (dx, dy).
func arrow(x, y, dx, dy float64) string {
	bx, by := x-dx*arrowLen, y-dy*arrowLen
	px, py := -dy*3, dx*3
	return fmt.Sprintf(`<polygon fill="#98a2b3" stroke="#98a2b3" points="%.1f,%.1f %.1f,%.1f %.1f,%.1f"/>`, x, y, bx+px, by+py, bx-px, by-py)
}

func rounded(x, y, w, h, r float64) string {
	return fmt.Sprintf("M%.1f,%.1fH%.1fQ%.1f,%.1f %.1f,%.1fV%.1fQ%.1f,%.1f %.1f,%.1fH%.1fQ%.1f,%.1f %.1f,%.1fV%.1fQ%.1f,%.1f %.1f,%.1fZ",
		x+r, y, x+w-r, x+w, y, x+w, y+r, y+h-r, x+w, y+h, x+w-r, y+h, x+r, x, y+h, x, y+h-r, y+r, x, y, x+r, y)
}
