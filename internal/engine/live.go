package engine

import (
	"io"
	"os"

	"github.com/baton-ml/baton/internal/store"
)

// A shell task's stdout and stderr go to files that the store gets when
// its attempt ends. While it runs, LiveLog reads their ends, so a page can
// tail a running task that this engine runs (a task leased by another
// process's worker is not here: ok is false).

type liveLog struct {
	attempt        int
	stdout, stderr *os.File
}

func (e *Engine) addLive(k store.TaskKey, attempt int, stdout, stderr *os.File) {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	if e.live == nil {
		e.live = map[store.TaskKey]liveLog{}
	}
	e.live[k] = liveLog{attempt: attempt, stdout: stdout, stderr: stderr}
}

// removeLive runs before the files close: a reader holding liveMu never
// reads a closed file.
func (e *Engine) removeLive(k store.TaskKey) {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	delete(e.live, k)
}

// LiveLog returns the last limit bytes of the stdout and stderr of task k's
// running attempt, if this engine runs it.
func (e *Engine) LiveLog(k store.TaskKey, limit int) (attempt int, stdout, stderr []byte, ok bool) {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	l, ok := e.live[k]
	if !ok {
		return 0, nil, nil, false
	}
	return l.attempt, tailOf(l.stdout, limit), tailOf(l.stderr, limit), true
}

// tailOf reads the last limit bytes written to f so far (the task writes
// through its own descriptor; ReadAt does not move the shared offset).
func tailOf(f *os.File, limit int) []byte {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil
	}
	from := max(0, fi.Size()-int64(limit))
	b := make([]byte, fi.Size()-from)
	n, err := f.ReadAt(b, from)
	if err != nil && err != io.EOF {
		return nil
	}
	return b[:n]
}
