package serve

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every answer is counted by path and reason and its latency observed by
// path, every served row's diversity and new creators' share observed by
// row, in the endpoint's series; a series appears at its first count
// (never a zero series for a path no answer took).
func TestSeriesCountEveryAnswer(t *testing.T) {
	f, w := recFixture(t, Rerank{Diversity: 0.3, NewCreatorShare: 0.25})
	reg := prometheus.NewRegistry()
	svc := New(Deps{Store: f.st, Blobs: f.blobs, Features: staticFeatures{}, Now: f.clk.now, Reg: reg})
	t.Cleanup(svc.Close)
	if err := svc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	sums := map[string]float64{}
	ask := func(key string) {
		resp, err := svc.Predict(context.Background(), "home", Request{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf(`baton_predictions_total{endpoint="home",path="%s",reason="%s"}`, resp.Path, resp.Reason)]++
		want[fmt.Sprintf(`baton_prediction_latency_seconds{endpoint="home",path="%s"}`, resp.Path)]++
		for _, r := range pageOf(t, resp).Rows {
			for _, h := range []string{"baton_recommend_row_diversity", "baton_recommend_row_new_creator_share"} {
				k := fmt.Sprintf(`%s{endpoint="home",row="%s"}`, h, r.ID)
				want[k]++
				if strings.HasSuffix(h, "diversity") {
					sums[k] += r.Diversity
				} else {
					sums[k] += r.NewCreatorShare
				}
			}
		}
	}
	for i, m := range w.Data.Members[:40] {
		ask(m.ID)
		if i%4 == 0 {
			ask(fmt.Sprintf("nobody-%d", i))
		}
	}
	if want[`baton_predictions_total{endpoint="home",path="model",reason="model"}`] == 0 ||
		want[`baton_predictions_total{endpoint="home",path="fallback",reason="low_confidence"}`] == 0 {
		t.Fatalf("the requests did not take both paths: %v", want)
	}
	got, gotSums := gather(t, reg)
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s = %v, want %v", k, got[k], n)
		}
	}
	for k, s := range sums {
		if math.Abs(gotSums[k]-s) > 1e-9 {
			t.Errorf("%s sums %v, want %v", k, gotSums[k], s)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("a series no answer made: %s = %v", k, got[k])
		}
	}
}

// gather is every series of reg: a counter's value or a histogram's count,
// and histograms' sums.
func gather(t *testing.T, reg *prometheus.Registry) (vals, sums map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals, sums = map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			k := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			if h := m.GetHistogram(); h != nil {
				vals[k], sums[k] = float64(h.GetSampleCount()), h.GetSampleSum()
			} else {
				vals[k] = m.GetCounter().GetValue()
			}
		}
	}
	return vals, sums
}
