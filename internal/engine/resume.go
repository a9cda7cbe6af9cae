package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
)

// Resume creates a new run of the same flow version, params and tags as run
// originID that reuses every task originID completed, re-running from step
// from (and everything below it) when from is set. A run whose owner died
// while it was running is first ended as failed: a dead owner is known by
// its expired lease, or at once when it was a process on this host.
// The new run is returned pending; Execute runs it. With claim, the new
// run is claimed for this engine (a server will not pick it up).
func (e *Engine) Resume(ctx context.Context, originID int64, from string, claim bool) (store.Run, error) {
	origin, err := e.st.Run(ctx, originID)
	if err != nil {
		return store.Run{}, err
	}
	fl, _, err := Load(ctx, e.st, origin)
	if err != nil {
		return store.Run{}, err
	}
	if from != "" && fl.Step(from) == nil {
		names := make([]string, len(fl.Steps))
		for i, s := range fl.Steps {
			names[i] = s.Name
		}
		return store.Run{}, fault.Invalidf("from", "flow %s has no step %q (steps: %s)",
			fl.Name, from, strings.Join(names, ", "))
	}
	switch origin.Status {
	case store.RunPending, store.RunRunning:
		alive := origin.Owner != "" && time.Now().Before(origin.LeaseExpires)
		if alive && OwnerGone(origin.Owner) {
			alive = false
		}
		if alive {
			return store.Run{}, fmt.Errorf("run %d is still running (held by %s, lease until %s): "+
				"wait for it to end, or stop that process first: %w", originID, origin.Owner,
				origin.LeaseExpires.Format(time.RFC3339), store.ErrConflict)
		}
		reason := "its process " + origin.Owner + " died"
		if origin.Owner == "" {
			reason = "it was handed back unfinished by a server that stopped"
		}
		if err := e.st.AbandonRun(ctx, originID, reason, true); err != nil &&
			!errors.Is(err, store.ErrConflict) {
			return store.Run{}, fmt.Errorf("end orphaned run %d: %w", originID, err)
		}
	}
	nr := store.NewRun{
		Flow: origin.Flow, FlowVersion: origin.FlowVersion, Params: origin.Params, Tags: origin.Tags,
		Trigger: store.TriggerResume, TriggerDetail: "run " + strconv.FormatInt(originID, 10),
		OriginRunID: originID, ResumeFrom: from,
	}
	if claim {
		nr.Owner = e.owner
	}
	return e.st.CreateRun(ctx, nr)
}

// runTemp is this process's scratch folder for run id (inputs, logs of
// the moment): per process, so processes sharing a home never meet there.
func (e *Engine) runTemp(id int64) string {
	return filepath.Join(e.slotDir, "run-"+strconv.FormatInt(id, 10))
}

// removeRunTemp removes the scratch folder of run id, from the engine's
// folder's descriptor: a link in its place is removed, not followed.
func (e *Engine) removeRunTemp(id int64) {
	removeAllAt(e.slotFd, "run-"+strconv.FormatInt(id, 10))
}

// OwnerGone reports whether a lease owner (host:pid:nonce) is certainly dead:
// a process of this host that no longer exists. Owners on other hosts are
// never known dead; their leases must expire.
func OwnerGone(owner string) bool {
	parts := strings.Split(owner, ":")
	if len(parts) != 3 {
		return false
	}
	host, err := os.Hostname()
	if err != nil || host != parts[0] {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
