package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// slot is one worker's place to run a task. Its output folder is reused
// from task to task (emptied in between): on the machines baton is measured
// on, creating and removing a folder costs ~300µs, a fifth of a shell
// task's whole budget.
type slot struct {
	out string
}

// newSlots makes n slots under dir/slots/<pid>-<nonce>, clearing slot
// folders that dead processes left behind.
func newSlots(dir, owner string, n int) (chan *slot, string, error) {
	root := filepath.Join(dir, "slots")
	if entries, err := os.ReadDir(root); err == nil {
		host, _ := os.Hostname()
		for _, e := range entries {
			pid, _, _ := strings.Cut(e.Name(), "-")
			if OwnerGone(host + ":" + pid + ":x") {
				os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, "", fmt.Errorf("engine: slot folder: %w", err)
	}
	spreadSubfolders(root)
	parts := strings.Split(owner, ":")
	mine := filepath.Join(root, strconv.Itoa(os.Getpid())+"-"+parts[len(parts)-1])
	ch := make(chan *slot, n)
	for i := range n {
		s := &slot{out: filepath.Join(mine, strconv.Itoa(i), "out")}
		if err := os.MkdirAll(s.out, 0o755); err != nil {
			return nil, "", fmt.Errorf("engine: slot folder: %w", err)
		}
		ch <- s
	}
	return ch, mine, nil
}

// reset makes the output folder empty for the next task.
func (s *slot) reset() error {
	f, err := os.Open(s.out)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
		if errors.Is(err, io.EOF) {
			return nil // already empty: the common case
		}
	}
	if err := os.RemoveAll(s.out); err != nil {
		return err
	}
	return os.MkdirAll(s.out, 0o755)
}

func unlinkedTemp(dir, name string) (*os.File, error) {
	f, err := os.CreateTemp(dir, name+"-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
