package quality

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// Synthetic is a signals table and a sample of human ratings with planted
// structure: a title's rating falls with low VMAF, rebuffering, slow
// startup, loudness away from the target and missing subtitles, plus
// noise; one title in twenty has one signal broken badly (Broken names
// which).
type Synthetic struct {
	Signals *Signals
	Ratings map[string]float64
	Broken  map[string]string // title → the signal planted out of range
}

// SignalNames are the columns of a synthetic signals file.
var SignalNames = []string{"bitrate_kbps", "vmaf", "rebuffer_rate", "startup_ms", "audio_lufs", "subtitle_coverage"}

// Synthesize makes titles titles, a share rated of them rated.
func Synthesize(titles int, rated float64, seed uint64) Synthetic {
	rng := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	s := Synthetic{Signals: &Signals{File: "synthetic", Names: slices.Clone(SignalNames)}, Ratings: map[string]float64{}, Broken: map[string]string{}}
	for i := range titles {
		id := fmt.Sprintf("t%05d", i)
		q := rng.NormFloat64()
		bitrate := math.Exp(8 + 0.4*q + 0.2*rng.NormFloat64())
		vmaf := clamp(85+5*q+3*rng.NormFloat64(), 0, 100)
		rebuf := math.Exp(-5.5 + 0.8*rng.NormFloat64())
		startup := math.Exp(7 + 0.3*rng.NormFloat64())
		lufs := LoudnessTarget + 1.5*rng.NormFloat64()
		subs := clamp(0.9+0.08*rng.NormFloat64(), 0, 1)
		if rng.IntN(20) == 0 {
			switch k := rng.IntN(4); k {
			case 0:
				vmaf, s.Broken[id] = 45+10*rng.Float64(), "vmaf"
			case 1:
				rebuf, s.Broken[id] = 0.05+0.05*rng.Float64(), "rebuffer_rate"
			case 2:
				startup, s.Broken[id] = 6000+4000*rng.Float64(), "startup_ms"
			case 3:
				lufs, s.Broken[id] = LoudnessTarget+10+4*rng.Float64(), "audio_lufs"
			}
		}
		s.Signals.Titles = append(s.Signals.Titles, id)
		s.Signals.values = append(s.Signals.values, bitrate, vmaf, rebuf, startup, lufs, subs)
		if rng.Float64() < rated {
			r := 4.0 + 0.05*(vmaf-85) - 25*rebuf - 0.8*math.Log(startup/1100) - 0.12*math.Abs(lufs-LoudnessTarget) + 1.0*(subs-0.9) + 0.25*rng.NormFloat64()
			s.Ratings[id] = clamp(r, 1, 5)
		}
	}
	return s
}

func clamp(v, lo, hi float64) float64 { return math.Min(hi, math.Max(lo, v)) }

// WriteSignals writes a signals table as CSV.
func WriteSignals(w io.Writer, s *Signals) error {
	var b bytes.Buffer
	b.WriteString("title")
	for _, n := range s.Names {
		b.WriteString("," + n)
	}
	b.WriteByte('\n')
	for i, t := range s.Titles {
		b.WriteString(csvField(t))
		for _, v := range s.Row(i) {
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(v, 'g', 6, 64))
		}
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteRatings writes title,rating, in the signals' title order.
func WriteRatings(w io.Writer, s Synthetic) error {
	var b bytes.Buffer
	b.WriteString("title,rating\n")
	for _, t := range s.Signals.Titles {
		if r, ok := s.Ratings[t]; ok {
			fmt.Fprintf(&b, "%s,%s\n", csvField(t), strconv.FormatFloat(r, 'f', 3, 64))
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
