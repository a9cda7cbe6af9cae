package rec_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/baton-ml/baton/internal/rec"
)

// Train a model on a synthetic service, save it, load it back and ask it.
func Example() {
	w, err := rec.Synthesize(rec.Synth{Seed: 1, Members: 300, Titles: 100})
	if err != nil {
		panic(err)
	}
	train, test := w.Data.Cut(w.Data.CutAt(0.2))
	m, err := rec.Train(context.Background(), rec.KindALS, train, map[string]string{"factors": "8"})
	if err != nil {
		panic(err)
	}
	var file bytes.Buffer
	if err := m.Save(&file); err != nil {
		panic(err)
	}
	loaded, err := rec.Load(&file)
	if err != nil {
		panic(err)
	}
	fmt.Println(loaded.Kind(), len(loaded.Recommend("m000001", rec.Options{N: 5})))
	fmt.Println("unknown member's confidence:", loaded.Confidence("nobody"))
	met, err := rec.Evaluate(context.Background(), loaded, test, 10)
	if err != nil {
		panic(err)
	}
	fmt.Println(met.Recall > 0)
	// Output:
	// als 5
	// unknown member's confidence: 0
	// true
}
