package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/store"
)

// StatusStore is what StoredStatuses reads.
type StatusStore interface {
	store.ServeStore
	store.ModelStore
}

// StoredStatuses says what serves each endpoint as the store records it,
// with no server: the same choices Refresh makes (the production version,
// a running rollout's canary and share, shadow versions, the fallback),
// without loading any model. Live figures (shadow statistics) are a
// running server's only.
func StoredStatuses(ctx context.Context, st StatusStore) ([]Status, error) {
	eps, err := st.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(eps))
	for _, e := range eps {
		spec, err := Stored(e)
		if err != nil {
			return nil, err
		}
		x := Status{Endpoint: spec.Name, Model: spec.Model}
		vs, err := st.ModelVersions(ctx, spec.Model)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("endpoint %s: model versions: %w", e.Name, err)
		}
		rs, err := st.Rollouts(ctx, spec.Name)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: rollouts: %w", e.Name, err)
		}
		if len(rs) > 0 && rs[0].Status == store.RolloutRunning {
			r := rs[0]
			x.Rollout = &r
			x.Canary, x.CanaryShare = r.CanaryVersion, r.Stages[min(r.Stage, len(r.Stages)-1)]
		}
		for _, v := range vs {
			switch {
			case x.Rollout != nil && v.Version == x.Rollout.CanaryVersion:
			case v.State == store.ModelProduction:
				x.Production = v.Version
			case v.State == store.ModelShadow && *spec.Shadow:
				x.Shadows = append(x.Shadows, v.Version)
			}
		}
		x.Fallback = staticFallback(spec.Fallback.Static)
		if fb := spec.Fallback; fb.Model != "" {
			ref := cmpOr(fb.Version, string(store.ModelProduction))
			fvs, err := st.ModelVersions(ctx, fb.Model)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("endpoint %s fallback: %w", e.Name, err)
			}
			// As registry.Resolve: a number, else the newest version in
			// that state or with that alias.
			found := 0
			for _, v := range fvs {
				if strconv.Itoa(v.Version) == ref || string(v.State) == ref || slices.Contains(v.Aliases, ref) {
					found = v.Version
				}
			}
			if found > 0 {
				x.Fallback = fb.Model + "@" + strconv.Itoa(found)
			} else {
				// What a server would do: the static value backs it up.
				x.Fallback = fmt.Sprintf("%s@%s (none yet; %s)", fb.Model, ref, x.Fallback)
			}
		}
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return out, nil
}

func staticFallback(v any) string {
	b, _ := json.Marshal(v)
	return "static " + string(b)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
