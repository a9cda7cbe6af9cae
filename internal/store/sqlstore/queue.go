package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// insertQueued creates queued tasks with their items, a few hundred rows
// per statement.
func (s *Store) insertQueued(ctx context.Context, tx *sql.Tx, c store.NewTasks) error {
	const chunk = 400
	maxAttempts := max(c.MaxAttempts, 1)
	for lo := 0; lo < c.Count; lo += chunk {
		hi := min(lo+chunk, c.Count)
		var b strings.Builder
		b.WriteString(`INSERT INTO tasks (run_id, step, idx, status, ready_at, queued, item, max_attempts, runner,
			req_cpu, req_mem, req_gpu, req_labels) VALUES `)
		args := make([]any, 0, (hi-lo)*2+9)
		args = append(args, c.RunID, c.Step, micros(c.ReadyAt), maxAttempts, c.Runner,
			c.Need.CPU, c.Need.Mem, c.Need.GPU, store.LabelText(c.Need.Labels))
		for i := lo; i < hi; i++ {
			if i > lo {
				b.WriteByte(',')
			}
			var item any
			if i < len(c.Items) {
				item = string(c.Items[i])
			}
			args = append(args, c.From+i, item)
			n := len(args)
			fmt.Fprintf(&b, "($1, $2, $%d, 'pending', $3, TRUE, $%d, $4, $5, $6, $7, $8, $9)", n-1, n)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("queue tasks %d..%d of %d/%s: %w", lo, hi-1, c.RunID, c.Step, err)
		}
	}
	return s.notify(ctx, tx, store.NoteQueue)
}

// ClaimTasks implements store.QueueStore. Without free it leases the
// first n claimable tasks in one statement; with it, it locks a few times
// as many candidates that fit alone, keeps in queue order those that fit
// together (and whose labels the worker carries), and leases those.
func (s *Store) ClaimTasks(ctx context.Context, worker string, n int, ttl time.Duration, runners []string, free *store.Capacity) ([]store.Claim, error) {
	var out []store.Claim
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		args := []any{worker, micros(now.Add(ttl)), micros(now), n, ""}
		can := "$5"
		for _, r := range runners {
			args = append(args, r)
			can += fmt.Sprintf(", $%d", len(args))
		}
		pick := `SELECT run_id, step, idx FROM tasks
				WHERE queued AND status = 'pending' AND not_before <= $3 AND runner IN (` + can + `)
				ORDER BY ready_at, run_id, idx LIMIT $4` + s.dialect.SkipLocked()
		if free != nil {
			chosen, err := s.fitting(ctx, tx, now, runners, n, free)
			if err != nil {
				return err
			}
			if len(chosen) == 0 {
				return nil
			}
			// The chosen keys, as a list of literals-by-parameter.
			args = args[:3]
			var keys []string
			for _, k := range chosen {
				args = append(args, k.RunID, k.Step, k.Index)
				keys = append(keys, fmt.Sprintf("($%d, $%d, $%d)", len(args)-2, len(args)-1, len(args)))
			}
			pick = strings.Join(keys, ", ")
		}
		var err error
		out, err = queryRows(ctx, tx, `UPDATE tasks SET status = 'running', lease_owner = $1, lease_until = $2,
			lease_gen = lease_gen + 1, attempts = attempts + 1, started_at = $3, error = ''
			WHERE (run_id, step, idx) IN (`+pick+`)
			RETURNING run_id, step, idx, attempts, lease_gen, item, max_attempts, req_cpu, req_mem, req_gpu, req_labels`, args,
			func(row scanner) (store.Claim, error) {
				var c store.Claim
				var item sql.NullString
				var labels string
				if err := row.Scan(&c.RunID, &c.Step, &c.Index, &c.Attempt, &c.Gen, &item, &c.MaxAttempts,
					&c.Need.CPU, &c.Need.Mem, &c.Need.GPU, &labels); err != nil {
					return c, err
				}
				c.Need.Labels = store.ParseLabelText(labels)
				if item.Valid {
					c.Item = []byte(item.String)
				}
				return c, nil
			})
		if err != nil {
			return fmt.Errorf("claim tasks: %w", err)
		}
		return nil
	})
	// RETURNING has no order on PostgreSQL: give them in queue order.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.RunID != b.RunID {
			return a.RunID < b.RunID
		}
		if a.Step != b.Step {
			return a.Step < b.Step
		}
		return a.Index < b.Index
	})
	return out, err
}

// maxLabelSubsets bounds the labels of a worker whose every subset the
// claim query lists (2^8 texts).
const maxLabelSubsets = 8

// fitting locks up to 4n pending tasks that each fit in free (in queue
// order) and returns those that fit together, at most n.
func (s *Store) fitting(ctx context.Context, tx *sql.Tx, now time.Time, runners []string, n int, free *store.Capacity) ([]store.TaskKey, error) {
	args := []any{free.CPU, free.Mem, free.GPU, micros(now), 4 * n, ""}
	can := "$6"
	for _, r := range runners {
		args = append(args, r)
		can += fmt.Sprintf(", $%d", len(args))
	}
	// Tasks whose labels the worker lacks must not fill the window of
	// candidates, or a step no worker here can run would starve every
	// task queued after it: a task's labels (stored as LabelText) fit
	// when they are a subset of the worker's, so the query takes only
	// those texts. Past maxLabelSubsets labels, Fits sorts them out.
	labels := ""
	if keys := slices.Sorted(maps.Keys(free.Labels)); len(keys) <= maxLabelSubsets {
		var in []string
		for mask := range 1 << len(keys) {
			sub := map[string]string{}
			for i, k := range keys {
				if mask&(1<<i) != 0 {
					sub[k] = free.Labels[k]
				}
			}
			args = append(args, store.LabelText(sub))
			in = append(in, fmt.Sprintf("$%d", len(args)))
		}
		labels = " AND req_labels IN (" + strings.Join(in, ", ") + ")"
	}
	type cand struct {
		k    store.TaskKey
		need store.Need
	}
	cands, err := queryRows(ctx, tx, `SELECT run_id, step, idx, req_cpu, req_mem, req_gpu, req_labels FROM tasks
			WHERE queued AND status = 'pending' AND not_before <= $4 AND runner IN (`+can+`)
				AND req_cpu <= $1 AND req_mem <= $2 AND req_gpu <= $3`+labels+`
			ORDER BY ready_at, run_id, idx LIMIT $5`+s.dialect.SkipLocked(), args,
		func(row scanner) (cand, error) {
			var c cand
			var labels string
			err := row.Scan(&c.k.RunID, &c.k.Step, &c.k.Index, &c.need.CPU, &c.need.Mem, &c.need.GPU, &labels)
			c.need.Labels = store.ParseLabelText(labels)
			return c, err
		})
	if err != nil {
		return nil, fmt.Errorf("claim tasks: %w", err)
	}
	left := *free
	var out []store.TaskKey
	for _, c := range cands {
		if len(out) == n {
			break
		}
		if left.Fits(c.need) {
			left.Take(c.need)
			out = append(out, c.k)
		}
	}
	return out, nil
}

// RenewTaskLeases implements store.QueueStore.
func (s *Store) RenewTaskLeases(ctx context.Context, worker string, ttl time.Duration) ([]store.TaskKey, []store.TaskKey, error) {
	var held, stop []store.TaskKey
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET lease_until = $1
			WHERE lease_owner = $2 AND queued AND status = 'running'`, micros(s.now().Add(ttl)), worker); err != nil {
			return fmt.Errorf("renew task leases: %w", err)
		}
		// Its own loop, not queryRows: each row lands in one or two lists.
		rows, err := tx.QueryContext(ctx, `SELECT t.run_id, t.step, t.idx, r.status <> 'running' OR r.cancel_requested
			FROM tasks t JOIN runs r ON r.id = t.run_id
			WHERE t.lease_owner = $1 AND t.queued AND t.status = 'running'`, worker)
		if err != nil {
			return fmt.Errorf("renew task leases: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var k store.TaskKey
			var halt bool
			if err := rows.Scan(&k.RunID, &k.Step, &k.Index, &halt); err != nil {
				return err
			}
			held = append(held, k)
			if halt {
				stop = append(stop, k)
			}
		}
		return rows.Err()
	})
	return held, stop, err
}

// FinishTask implements store.QueueStore.
func (s *Store) FinishTask(ctx context.Context, f store.Finish) error {
	errs, err := s.FinishTasks(ctx, []store.Finish{f})
	if err != nil {
		return err
	}
	return errs[0]
}

// FinishTasks implements store.QueueStore.
func (s *Store) FinishTasks(ctx context.Context, fs []store.Finish) ([]error, error) {
	errs := make([]error, len(fs))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, f := range fs {
			errs[i] = nil
			ok, err := s.finishOne(ctx, tx, f)
			if err != nil {
				return err
			}
			if !ok {
				errs[i] = fmt.Errorf("task %s attempt %d (lease %d): %w", f.TaskKey, f.Attempt, f.Gen, store.ErrLeaseLost)
			}
		}
		return nil
	})
	return errs, err
}

// finishOne records one attempt's end unless its lease is gone.
func (s *Store) finishOne(ctx context.Context, tx *sql.Tx, f store.Finish) (bool, error) {
	status := f.Status
	var finished, notBefore int64
	if status == store.TaskFailed && !f.RetryAt.IsZero() {
		status, notBefore = store.TaskPending, micros(f.RetryAt)
	} else {
		finished = micros(f.At)
	}
	var exit any
	if f.ExitCode != nil {
		exit = *f.ExitCode
	}
	res, err := s.exec(ctx, tx, qFinishTask, status, finished, notBefore, exit, f.Error, f.RunID, f.Step, f.Index, f.Gen, f.Worker)
	if err != nil {
		return false, fmt.Errorf("finish task %s: %w", f.TaskKey, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	a := f.Stdout
	a.TaskKey, a.Attempt, a.Status, a.StartedAt, a.FinishedAt, a.ExitCode, a.Error =
		f.TaskKey, f.Attempt, f.Status, f.StartedAt, f.At, f.ExitCode, f.Error
	b := &store.Batch{Attempts: []store.Attempt{a}}
	if f.Status == store.TaskSucceeded {
		b.Artifacts, b.Signals = f.Artifacts, f.Signals
	}
	if err := s.apply(ctx, tx, b); err != nil {
		return false, err
	}
	if status == store.TaskPending {
		if err := s.notify(ctx, tx, store.NoteQueue); err != nil {
			return false, err
		}
	}
	return true, s.notify(ctx, tx, store.NoteRunPref+strconv.FormatInt(f.RunID, 10))
}

const qFinishTask = `UPDATE tasks SET status = $1, lease_owner = '', lease_until = 0,
	finished_at = $2, not_before = $3, exit_code = COALESCE($4, exit_code), error = $5
	WHERE run_id = $6 AND step = $7 AND idx = $8 AND lease_gen = $9 AND lease_owner = $10 AND status = 'running'
		AND EXISTS (SELECT 1 FROM runs WHERE id = $6 AND status = 'running')`

// maxLost is how many attempts of a task may be lost with their worker
// before the task fails.
const maxLost = 5

// ReapTasks implements store.QueueStore.
func (s *Store) ReapTasks(ctx context.Context) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := micros(s.now())
		const lost = "lost: its worker stopped renewing the lease (it died, or lost the database)"
		if _, err := tx.ExecContext(ctx, `INSERT INTO attempts (run_id, step, idx, attempt, status, started_at, finished_at, error)
			SELECT run_id, step, idx, attempts, 'failed', started_at, $1, $2 FROM tasks
			WHERE queued AND status = 'running' AND lease_until < $1
			ON CONFLICT (run_id, step, idx, attempt) DO NOTHING`, now, lost); err != nil {
			return fmt.Errorf("reap tasks: %w", err)
		}
		// A lost attempt is the infrastructure's failure, not the task's:
		// it gets another try without using up the step's retries, up to
		// maxLost times (a task that keeps killing its worker fails).
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET
			status = CASE WHEN lost >= $3 AND attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
			finished_at = CASE WHEN lost >= $3 AND attempts >= max_attempts THEN $1 ELSE 0 END,
			max_attempts = CASE WHEN lost < $3 THEN max_attempts + 1 ELSE max_attempts END,
			lost = lost + 1,
			error = $2, lease_owner = '', lease_until = 0, not_before = $1
			WHERE queued AND status = 'running' AND lease_until < $1`, now, lost, maxLost)
		if err != nil {
			return fmt.Errorf("reap tasks: %w", err)
		}
		n, _ = res.RowsAffected()
		if n > 0 {
			if err := s.notify(ctx, tx, store.NoteQueue); err != nil {
				return err
			}
			return s.notify(ctx, tx, store.NoteRuns)
		}
		return nil
	})
	return int(n), err
}

// ReleaseTask implements store.QueueStore.
func (s *Store) ReleaseTask(ctx context.Context, c store.Claim, worker string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET status = 'pending', attempts = attempts - 1, lease_owner = '',
			lease_until = 0, started_at = 0 WHERE run_id = $1 AND step = $2 AND idx = $3 AND lease_gen = $4
			AND lease_owner = $5 AND status = 'running'`, c.RunID, c.Step, c.Index, c.Gen, worker)
		if err != nil {
			return fmt.Errorf("release task %s: %w", c.TaskKey, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("task %s: %w", c.TaskKey, store.ErrLeaseLost)
		}
		return s.notify(ctx, tx, store.NoteQueue)
	})
}

// ExpireTaskLeases implements store.QueueStore.
func (s *Store) ExpireTaskLeases(ctx context.Context, worker string, keys []store.TaskKey) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `UPDATE tasks SET lease_until = 0
				WHERE run_id = $1 AND step = $2 AND idx = $3 AND lease_owner = $4 AND status = 'running'`,
				k.RunID, k.Step, k.Index, worker); err != nil {
				return fmt.Errorf("expire lease of %s: %w", k, err)
			}
		}
		return nil
	})
}

// StepProgress implements store.QueueStore.
func (s *Store) StepProgress(ctx context.Context, runID int64, step string) (store.StepProgress, error) {
	p := store.StepProgress{Counts: map[store.TaskStatus]int{}}
	// Count what is left (a partial index keeps it cheap as the step
	// nears its end); the rest succeeded.
	var total int
	q := `SELECT status, COUNT(*) FROM tasks WHERE run_id = $1 AND step = $2 AND status <> 'succeeded' GROUP BY status`
	switch err := s.r.QueryRowContext(ctx, `SELECT num_tasks FROM steps WHERE run_id = $1 AND name = $2`, runID, step).Scan(&total); {
	case errors.Is(err, sql.ErrNoRows):
		// No step row to take the total from: count everything.
		q = `SELECT status, COUNT(*) FROM tasks WHERE run_id = $1 AND step = $2 GROUP BY status`
	case err != nil:
		return p, fmt.Errorf("progress of %d/%s: %w", runID, step, err)
	}
	// Its own loop, not queryRows: the rows fill a map of counts.
	rows, err := s.r.QueryContext(ctx, q, runID, step)
	if err != nil {
		return p, fmt.Errorf("progress of %d/%s: %w", runID, step, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st store.TaskStatus
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return p, err
		}
		p.Counts[st] = n
	}
	if err := rows.Err(); err != nil {
		return p, err
	}
	left := 0
	for _, n := range p.Counts {
		left += n
	}
	if total > left {
		p.Counts[store.TaskSucceeded] = total - left
	}
	if p.Counts[store.TaskFailed] > 0 {
		t, err := scanTask(s.r.QueryRowContext(ctx, `SELECT `+taskCols+` FROM tasks
			WHERE run_id = $1 AND step = $2 AND status = 'failed' ORDER BY idx LIMIT 1`, runID, step))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return p, err
		}
		if err == nil {
			p.Failed = &t
		}
	}
	return p, nil
}

// Listen implements store.QueueStore: notes from every process where the
// database carries them, and always this process's own. All listeners of
// the process share one database connection (started on first use).
func (s *Store) Listen(ctx context.Context) (<-chan string, error) {
	if s.listener != nil {
		s.remoteOnce.Do(func() {
			// The stream lives as long as the store: Close ends it.
			rctx, cancel := context.WithCancel(context.Background())
			s.closers = append(s.closers, func() error { cancel(); return nil })
			notes, err := s.listener(rctx)
			if err != nil {
				s.remoteErr = err
				cancel()
				return
			}
			go func() {
				for n := range notes {
					s.hub.publish(n)
				}
			}()
		})
		if s.remoteErr != nil {
			return nil, s.remoteErr
		}
	}
	return s.hub.subscribe(ctx), nil
}

// hub fans notes out to this process's listeners.
type hub struct {
	mu   sync.Mutex
	subs map[chan string]struct{}
}

func newHub() *hub { return &hub{subs: map[chan string]struct{}{}} }

func (h *hub) subscribe(ctx context.Context) <-chan string {
	ch := make(chan string, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.subs, ch)
		close(ch)
		h.mu.Unlock()
	}()
	return ch
}

func (h *hub) publish(note string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- note:
		default:
		}
	}
}
