package bandit_test

import (
	"fmt"

	"github.com/baton-ml/baton/internal/bandit"
)

// A policy with no data explores with probability ε and logs the exact
// probability of what it chose.
func ExamplePolicy_Decide() {
	fz, err := bandit.NewFeaturizer([]bandit.Feature{{Name: "market", Type: bandit.Category, Values: []string{"BR", "US"}}})
	if err != nil {
		panic(err)
	}
	p, err := bandit.NewPolicy(fz, bandit.Params{Alpha: 0.5, Epsilon: 0.2, Lambda: 1, Seed: 42})
	if err != nil {
		panic(err)
	}
	d, err := p.Decide(bandit.Request{ID: "d-1", Context: map[string]any{"market": "BR"},
		Kind: bandit.Artwork, Title: "dark", Arms: []string{"dark-a0", "dark-a1", "dark-a2"}})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s with propensity %.4f\n", d.Chosen[0], d.Propensity)
	// Output: dark-a0 with propensity 0.8667
}
