package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/store"
)

func (a *app) logsCmd() *cobra.Command {
	var attempt int
	var stream string
	cmd := &cobra.Command{
		Use:   "logs RUN_ID[/STEP[/INDEX]]",
		Short: "Print the stdout and stderr that tasks wrote",
		Long: `Print what tasks wrote to stdout and stderr, each attempt kept apart.
Without STEP, every task of the run; without INDEX, every task of the step.
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
			index := -1
			if len(parts) > 2 {
				if index, err = strconv.Atoi(parts[2]); err != nil || index < 0 {
					return usageErr("logs %s: %q is not a task index", args[0], parts[2])
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
			var entries []logEntry
			for _, s := range steps {
				if len(parts) > 1 && s.Name != parts[1] {
					continue
				}
				found = true
				tasks, err := e.st.Tasks(ctx, id, s.Name)
				if err != nil {
					return err
				}
				for _, t := range tasks {
					if index >= 0 && t.Index != index {
						continue
					}
					if a.json() {
						ent, ok, err := taskLog(ctx, e, t, attempt)
						if err != nil {
							return err
						}
						if ok {
							entries = append(entries, ent)
						}
						continue
					}
					if err := a.printTaskLogs(ctx, e, t, attempt, stream, len(parts) < 3); err != nil {
						return err
					}
				}
			}
			if !found && len(parts) > 1 {
				return notFound(fmt.Errorf("run %d (flow %s) has no step %q: %w", id, run.Flow, parts[1], store.ErrNotFound))
			}
			if a.json() {
				if entries == nil {
					entries = []logEntry{}
				}
				return a.printJSON(entries)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&attempt, "attempt", 0, "show this attempt (default: the last)")
	cmd.Flags().StringVar(&stream, "stream", "both", "stdout, stderr or both")
	return cmd
}

func (a *app) printTaskLogs(ctx context.Context, e *env, t store.Task, attempt int, stream string, headers bool) error {
	k := t.TaskKey
	if t.Reused() {
		k = t.ReusedFrom
	}
	atts, err := e.st.Attempts(ctx, k)
	if err != nil {
		return err
	}
	if len(atts) == 0 {
		return nil // never ran
	}
	at := atts[len(atts)-1]
	if attempt > 0 {
		if attempt > len(atts) {
			if !headers {
				return &exitError{code: exitFailed, err: fmt.Errorf("task %s has %d attempt(s), not %d", t.TaskKey, len(atts), attempt)}
			}
			return nil
		}
		at = atts[attempt-1]
	}
	for _, s := range []struct {
		name, digest string
	}{{"stdout", at.StdoutDigest}, {"stderr", at.StderrDigest}} {
		if stream != "both" && stream != s.name {
			continue
		}
		if headers || stream == "both" {
			note := ""
			if t.Reused() {
				note = ", reused from run " + strconv.FormatInt(k.RunID, 10)
			}
			fmt.Fprintf(a.out, "==> %s attempt %d %s (%s%s) <==\n", t.TaskKey, at.Attempt, s.name, at.Status, note)
		}
		if s.digest == "" {
			continue
		}
		b, err := e.blobs.Read(ctx, s.digest)
		if err != nil {
			return err
		}
		a.out.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' && (headers || stream == "both") {
			fmt.Fprintln(a.out)
		}
	}
	return nil
}

// logEntry is one task's log in `baton logs -o json`.
type logEntry struct {
	Task       string           `json:"task"`
	Attempt    int              `json:"attempt"`
	Status     store.TaskStatus `json:"status"`
	ReusedFrom string           `json:"reused_from,omitempty"`
	Stdout     string           `json:"stdout"`
	Stderr     string           `json:"stderr"`
}

func taskLog(ctx context.Context, e *env, t store.Task, attempt int) (logEntry, bool, error) {
	k := t.TaskKey
	if t.Reused() {
		k = t.ReusedFrom
	}
	atts, err := e.st.Attempts(ctx, k)
	if err != nil || len(atts) == 0 {
		return logEntry{}, false, err
	}
	at := atts[len(atts)-1]
	if attempt > 0 {
		if attempt > len(atts) {
			return logEntry{}, false, nil
		}
		at = atts[attempt-1]
	}
	ent := logEntry{Task: t.TaskKey.String(), Attempt: at.Attempt, Status: at.Status}
	if t.Reused() {
		ent.ReusedFrom = k.String()
	}
	for _, x := range []struct {
		digest string
		dst    *string
	}{{at.StdoutDigest, &ent.Stdout}, {at.StderrDigest, &ent.Stderr}} {
		if x.digest == "" {
			continue
		}
		b, err := e.blobs.Read(ctx, x.digest)
		if err != nil {
			return ent, false, err
		}
		*x.dst = string(b)
	}
	return ent, true, nil
}
