package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestExpAnalyzeSegments(t *testing.T) {
	t.Parallel()
	file := "../abtest/testdata/hte_case.csv"
	code, out, stderr := runBaton(t, "exp", "analyze", file, "--control", "A", "--segment", "market", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Control string `json:"control"`
		SRM     any    `json:"srm"`
		Metrics []struct {
			Name        string `json:"name"`
			Comparisons []any  `json:"comparisons"`
			Segments    []struct {
				Column        string `json:"column"`
				Correction    string `json:"correction"`
				Values        []any  `json:"values"`
				Heterogeneity []struct {
					Variant string   `json:"variant"`
					Q       *float64 `json:"q"`
					I2      *float64 `json:"i2"`
				} `json:"heterogeneity"`
			} `json:"segments"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Control != "A" || rep.SRM == nil || len(rep.Metrics) != 1 || len(rep.Metrics[0].Comparisons) != 2 {
		t.Fatalf("the existing keys: %s", out)
	}
	s := rep.Metrics[0].Segments
	if len(s) != 1 || s[0].Column != "market" || s[0].Correction != "benjamini-hochberg" || len(s[0].Values) != 5 ||
		len(s[0].Heterogeneity) != 2 || s[0].Heterogeneity[0].Q == nil || s[0].Heterogeneity[0].I2 == nil {
		t.Fatalf("segments: %s", out)
	}
	code, out, _ = runBaton(t, "exp", "analyze", file, "--control", "A", "--segment", "market")
	if code != 0 || !strings.Contains(out, "watch by market (Welch; p-values adjusted by Benjamini–Hochberg") || !strings.Contains(out, "Cochran's Q") {
		t.Fatalf("table: %s", out)
	}
	code, _, stderr = runBaton(t, "exp", "analyze", file, "--control", "A", "--segment", "country")
	if code != 2 || !strings.Contains(stderr, `unknown segment column "country"`) {
		t.Fatalf("unknown segment: exit %d %s", code, stderr)
	}
}
