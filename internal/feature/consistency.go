package feature

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// ConsistencyReport compares online values with the batch path's values
// for the same keys and time.
type ConsistencyReport struct {
	At           time.Time  `json:"at"`
	Keys         int        `json:"keys"`
	Compared     int        `json:"compared"`
	Mismatched   int        `json:"mismatched"`
	MismatchRate float64    `json:"mismatch_rate"`
	Examples     []Mismatch `json:"examples,omitempty"`
}

// Mismatch is one value on which the two paths disagree.
type Mismatch struct {
	Key     string `json:"key"`
	Feature string `json:"feature"`
	Online  any    `json:"online"`
	Batch   any    `json:"batch"`
}

// Consistency samples up to n keys of the features' sources from the event
// logs, reads their online values at t, recomputes them on the batch path
// (as a training set with one label row per key at t) and reports how many
// disagree. Events behind the watermark are the expected cause of a
// mismatch: they reach the batch path but not the online store.
func Consistency(ctx context.Context, e *Engine, feats []*Feature, n int, t time.Time) (ConsistencyReport, error) {
	rep := ConsistencyReport{At: t.UTC()}
	cat := e.Catalog()
	// Features are grouped by entity: a label row carries one key column
	// per entity, so one key's row serves every feature of its entity.
	byEntity := map[string][]*Feature{}
	for _, f := range feats {
		ent := cat.Sources[f.Source].Entity
		byEntity[ent] = append(byEntity[ent], f)
	}
	rng := rand.New(rand.NewPCG(uint64(t.UnixNano()), 7))
	for _, ent := range slices.Sorted(maps.Keys(byEntity)) {
		fs := byEntity[ent]
		keys, err := sampleKeys(e, cat, fs, n, rng)
		if err != nil {
			return rep, err
		}
		if len(keys) == 0 {
			continue
		}
		keyCol := cat.Entities[ent].Key
		labels := &Labels{Header: []string{keyCol, "ts"}, TimeCol: 1}
		us := t.UnixMicro()
		for _, k := range keys {
			labels.Rows = append(labels.Rows, []string{k, strconv.FormatInt(us, 10)})
			labels.Times = append(labels.Times, us)
		}
		cols, err := TrainingSet(ctx, cat, e.LogDir(), labels, fs, nil)
		if err != nil {
			return rep, err
		}
		rep.Keys += len(keys)
		for r, k := range keys {
			v, err := e.Get(ctx, k, fs, t)
			if err != nil {
				return rep, err
			}
			for _, c := range cols {
				rep.Compared++
				batch := c.Values[r].JSON(c.Type)
				if !sameJSON(v.Features[c.Feature.Name], batch) {
					rep.Mismatched++
					if len(rep.Examples) < 10 {
						rep.Examples = append(rep.Examples, Mismatch{Key: k, Feature: c.Feature.Name, Online: v.Features[c.Feature.Name], Batch: batch})
					}
				}
			}
		}
	}
	if rep.Compared > 0 {
		rep.MismatchRate = float64(rep.Mismatched) / float64(rep.Compared)
	}
	return rep, nil
}

func sameJSON(a, b any) bool {
	af, aok := a.(float64)
	bf, bok := b.(float64)
	if aok && bok {
		return Value{Kind: KindNum, Num: af}.Equal(Value{Kind: KindNum, Num: bf})
	}
	return a == b
}

// sampleKeys draws up to n distinct keys, uniformly, from the logs of the
// features' sources.
func sampleKeys(e *Engine, cat *Catalog, fs []*Feature, n int, rng *rand.Rand) ([]string, error) {
	seen, done := map[string]bool{}, map[string]bool{}
	var all []string
	for _, f := range fs {
		if done[f.Source] {
			continue
		}
		done[f.Source] = true
		l, err := OpenLog(e.LogDir(), cat.Sources[f.Source])
		if err != nil {
			return nil, err
		}
		err = l.Scan(func(ev *Event) error {
			if !seen[ev.Key] {
				seen[ev.Key] = true
				all = append(all, ev.Key)
			}
			return nil
		})
		l.Close()
		if err != nil {
			return nil, err
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	if len(all) > n {
		all = all[:n]
	}
	return all, nil
}
