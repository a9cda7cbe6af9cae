package bandit

import (
	"bytes"
	"strconv"
	"testing"
)

// BenchmarkDecidePage is the target: one decision is the order of
// six rows and the artwork of 20 titles with three variants each (21
// logged decisions), by a trained policy, under 50 µs.
func BenchmarkDecidePage(b *testing.B) {
	w := NewWorld(20)
	p := trainedOnUniform(b, w, 2000)
	titles := make([]TitleArtwork, len(w.Titles))
	for i, t := range w.Titles {
		titles[i] = TitleArtwork{Title: t, Artworks: w.ArtworkIDs(t)}
	}
	ctxs := w.Contexts()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = "page-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		page, err := p.DecidePage(PageRequest{ID: ids[i%len(ids)], Context: ctxs[i%len(ctxs)], Rows: w.Rows, Titles: titles})
		if err != nil || len(page.Artwork) != 20 {
			b.Fatal(err)
		}
	}
}

// BenchmarkFit is training from logs: one event is one online update.
func BenchmarkFit(b *testing.B) {
	w := NewWorld(20)
	events := simulateEvents(b, w, uniform(b, w, 1), 1, 2000)
	fz := worldFZ(b, w)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Fit(b.Context(), events, fz, DefaultParams()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}

// BenchmarkReadLog is reading and joining a simulated log, per line.
func BenchmarkReadLog(b *testing.B) {
	w := NewWorld(20)
	var buf bytes.Buffer
	lw := NewLogWriter(&buf)
	p := uniform(b, w, 1)
	err := w.Simulate(b.Context(), p, 1, 200, func(d Decision, r Reward) error {
		if err := lw.Decision(d); err != nil {
			return err
		}
		return lw.Reward(r)
	})
	if err != nil || lw.Flush() != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	lines := bytes.Count(data, []byte("\n"))
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		lr := NewLogReader()
		if err := lr.Read(b.Context(), "log", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if log := lr.Log(); log.Problems() != 0 {
			b.Fatal(log.Problems())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
