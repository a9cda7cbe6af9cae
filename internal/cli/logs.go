package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

func (a *app) logsCmd() *cobra.Command {
	var attempt int
	var stream string
	cmd := &cobra.Command{
		Use:   "logs RUN_ID[/STEP[/INDEX[/INDEX...]]]",
		Short: "Print the stdout and stderr that tasks wrote",
		Long: `Print what tasks wrote to stdout and stderr, each attempt kept apart.
Without STEP, every task of the run; without INDEX, every task of the step;
a task of a nested foreach has an INDEX per level (RUN/STEP/I/J).
By default the last attempt of each task; --attempt N picks one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch stream {
			case "both", "stdout", "stderr":
			default:
				return usageErr("--stream %q: use stdout, stderr or both", stream)
			}
			if attempt < 0 {
				return usageErr("--attempt %d: attempts count from 1", attempt)
			}
			parts := strings.SplitN(args[0], "/", 3)
			id, err := parseRunID(parts[0])
			if err != nil {
				return err
			}
			// A task of a nested foreach is addressed by an index per level.
			var path []int
			if len(parts) > 2 {
				for seg := range strings.SplitSeq(parts[2], "/") {
					i, err := strconv.Atoi(seg)
					if err != nil || i < 0 {
						return usageErr("logs %s: %q is not a task index", args[0], parts[2])
					}
					path = append(path, i)
				}
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			run, err := e.st.Run(ctx, id)
			if err != nil {
				return notFound(err)
			}
			steps, err := e.st.Steps(ctx, id)
			if err != nil {
				return err
			}
			found := false
			var entries []view.Log
			for _, s := range steps {
				if len(parts) > 1 && s.Name != parts[1] {
					continue
				}
				found = true
				index := -1
				if path != nil {
					shape := s.TaskShape()
					var ok bool
					if shape.Level() == 0 && len(path) == 1 {
						index, ok = path[0], true
					} else if index, ok = shape.Index(path); !ok {
						return notFound(fmt.Errorf("step %s of run %d has no task %s (it runs in %d foreach level(s)): %w",
							s.Name, id, parts[2], shape.Level(), store.ErrNotFound))
					}
				}
				tasks, err := e.st.Tasks(ctx, id, s.Name)
				if err != nil {
					return err
				}
				for _, t := range tasks {
					if index >= 0 && t.Index != index {
						continue
					}
					if a.json() {
						ent, ok, err := view.TaskLog(ctx, e.st, e.blobs, t, s.TaskShape(), attempt)
						if errors.Is(err, view.ErrNoAttempt) {
							continue
						}
						if err != nil {
							return err
						}
						if ok {
							entries = append(entries, ent)
						}
						continue
					}
					if err := a.printTaskLogs(ctx, e, t, s.TaskShape(), attempt, stream, len(parts) < 3); err != nil {
						return err
					}
				}
			}
			if !found && len(parts) > 1 {
				return notFound(fmt.Errorf("run %d (flow %s) has no step %q: %w", id, run.Flow, parts[1], store.ErrNotFound))
			}
			if a.json() {
				return a.printJSON(entries)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&attempt, "attempt", 0, "show this attempt (default: the last)")
	cmd.Flags().StringVar(&stream, "stream", "both", "stdout, stderr or both")
	return cmd
}

func (a *app) printTaskLogs(ctx context.Context, e *env, t store.Task, shape store.Shape, attempt int, stream string, headers bool) error {
	l, ok, err := view.TaskLog(ctx, e.st, e.blobs, t, shape, attempt)
	if errors.Is(err, view.ErrNoAttempt) {
		if !headers {
			return &exitError{code: exitFailed, err: fmt.Errorf("task %s has no attempt %d", view.TaskAddr(t.TaskKey, shape), attempt)}
		}
		return nil
	}
	if err != nil || !ok {
		return err // !ok: the task never ran
	}
	for _, out := range []struct{ name, text string }{{"stdout", l.Stdout}, {"stderr", l.Stderr}} {
		if stream != "both" && stream != out.name {
			continue
		}
		if headers || stream == "both" {
			note := ""
			if l.ReusedFrom != "" {
				note = ", reused from " + l.ReusedFrom
			}
			fmt.Fprintf(a.out, "==> %s attempt %d %s (%s%s) <==\n", l.Task, l.Attempt, out.name, l.Status, note)
		}
		io.WriteString(a.out, out.text)
		if out.text != "" && out.text[len(out.text)-1] != '\n' && (headers || stream == "both") {
			fmt.Fprintln(a.out)
		}
	}
	return nil
}
