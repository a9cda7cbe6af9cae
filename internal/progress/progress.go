// Package progress shows a run's progress: plain lines for logs and pipes,
// live bars (vbauerster/mpb) on a terminal.
package progress

import (
	"fmt"
	"io"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Lines reports progress as plain lines: for logs, pipes and CI.
type Lines struct {
	w       io.Writer
	start   time.Time
	steps   map[string]*stepProgress
	retries map[string]int
}

type stepProgress struct {
	n, done, reused int
	start           time.Time
}

// NewLines writes progress lines to w.
func NewLines(w io.Writer) *Lines {
	return &Lines{w: w, steps: map[string]*stepProgress{}}
}

func (l *Lines) RunStarted(r store.Run, f *flow.Flow) {
	l.start = time.Now()
	verb := "started"
	if r.OriginRunID != 0 {
		verb = fmt.Sprintf("resuming run %d", r.OriginRunID)
	}
	fmt.Fprintf(l.w, "run %d: flow %s v%d %s (%d steps)\n", r.ID, r.Flow, r.FlowVersion, verb, len(f.Steps))
}

func (l *Lines) StepStarted(step string, tasks, reused int) {
	l.steps[step] = &stepProgress{n: tasks, reused: reused, done: reused, start: time.Now()}
	extra := ""
	if reused > 0 {
		extra = fmt.Sprintf(", %d reused", reused)
	}
	fmt.Fprintf(l.w, "step %s: started (%s%s)\n", step, plural(tasks, "task"), extra)
}

func (l *Lines) StepWaiting(step, signal string) {
	fmt.Fprintf(l.w, "step %s: waiting for signal %s\n", step, signal)
}

// StepNote prints a note on a step (engine.Noter).
func (l *Lines) StepNote(step, note string) {
	fmt.Fprintf(l.w, "step %s: %s\n", step, note)
}

func (l *Lines) TaskStarted(store.TaskKey, int) {}

func (l *Lines) TaskFinished(k store.TaskKey, attempt int, st store.TaskStatus, msg string, took time.Duration) {
	switch st {
	case store.TaskPending:
		fmt.Fprintf(l.w, "task %s/%d: attempt %d failed (%s), will retry\n", k.Step, k.Index, attempt, msg)
		return
	case store.TaskFailed:
		fmt.Fprintf(l.w, "task %s/%d: failed after %s (%s); see `baton logs %s`\n", k.Step, k.Index,
			plural(attempt, "attempt"), msg, k)
	}
	if sp := l.steps[k.Step]; sp != nil {
		sp.done++
	}
}

// StepCounts takes a step's progress as the store counts it (a run whose
// tasks go through the queue reports no TaskFinished).
func (l *Lines) StepCounts(step string, done, total int) {
	if sp := l.steps[step]; sp != nil {
		sp.done, sp.n = done, total
	}
}

func (l *Lines) StepFinished(step string, st store.TaskStatus) {
	sp := l.steps[step]
	if sp == nil {
		fmt.Fprintf(l.w, "step %s: %s\n", step, st)
		return
	}
	fmt.Fprintf(l.w, "step %s: %s (%d/%d tasks in %s)\n", step, st, sp.done, sp.n, since(sp.start))
}

func (l *Lines) RunFinished(r store.Run) {}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func since(t time.Time) time.Duration {
	return time.Since(t).Round(time.Millisecond)
}

// Bars reports progress as live bars, one per step, on a terminal.
type Bars struct {
	p    *mpb.Progress
	bars map[string]*mpb.Bar
	log  *Lines
}

// NewBars draws bars on w, which should be a terminal.
func NewBars(w io.Writer) *Bars {
	// The caller chose bars for a terminal: draw whatever w is (mpb would
	// stay blank on anything else, which left the bars untestable).
	b := &Bars{p: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(100*time.Millisecond), mpb.WithAutoRefresh()),
		bars: map[string]*mpb.Bar{}}
	// Messages print above the bars.
	b.log = NewLines(b.p)
	return b
}

func (b *Bars) RunStarted(r store.Run, f *flow.Flow) { b.log.RunStarted(r, f) }

func (b *Bars) StepStarted(step string, tasks, reused int) {
	b.log.steps[step] = &stepProgress{n: tasks, reused: reused, done: reused, start: time.Now()}
	bar := b.p.AddBar(int64(tasks),
		mpb.PrependDecorators(decor.Name(step, decor.WCSyncSpaceR), decor.CountersNoUnit("%d/%d", decor.WCSyncSpace)),
		mpb.AppendDecorators(decor.Elapsed(decor.ET_STYLE_GO, decor.WCSyncSpace)),
	)
	bar.SetCurrent(int64(reused))
	b.bars[step] = bar
}

func (b *Bars) StepWaiting(step, signal string) { b.log.StepWaiting(step, signal) }

// StepNote prints a note on a step (engine.Noter).
func (b *Bars) StepNote(step, note string) { b.log.StepNote(step, note) }

func (b *Bars) TaskStarted(store.TaskKey, int) {}

func (b *Bars) TaskFinished(k store.TaskKey, attempt int, st store.TaskStatus, msg string, took time.Duration) {
	if st == store.TaskPending || st == store.TaskFailed {
		b.log.TaskFinished(k, attempt, st, msg, took)
		return
	}
	if bar := b.bars[k.Step]; bar != nil {
		bar.Increment()
	}
}

// StepCounts moves a step's bar to the count the store holds.
func (b *Bars) StepCounts(step string, done, total int) {
	b.log.StepCounts(step, done, total)
	if bar := b.bars[step]; bar != nil {
		bar.SetCurrent(int64(done))
	}
}

func (b *Bars) StepFinished(step string, st store.TaskStatus) {
	if bar := b.bars[step]; bar != nil {
		if st == store.TaskSucceeded {
			bar.SetTotal(-1, true)
		} else {
			bar.Abort(false)
		}
	}
}

func (b *Bars) RunFinished(store.Run) { b.p.Wait() }

// Close stops the bars when a run ends without RunFinished (an error).
func (b *Bars) Close() {
	for _, bar := range b.bars {
		if !bar.Completed() {
			bar.Abort(false)
		}
	}
	b.p.Wait()
}

var _ engine.Observer = (*Lines)(nil)
var _ engine.Observer = (*Bars)(nil)
var _ engine.Counter = (*Lines)(nil)
var _ engine.Counter = (*Bars)(nil)
