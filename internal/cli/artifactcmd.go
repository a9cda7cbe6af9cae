package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/store"
)

func (a *app) artifactCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifact",
		Short: "Read the artifacts of past runs",
	}
	var outFile string
	get := &cobra.Command{
		Use:   "get PATH",
		Short: "Write an artifact's bytes to stdout (or --out FILE)",
		Long: `Write an artifact's bytes to stdout. PATH is RUN_ID/STEP/NAME, or
RUN_ID/STEP/INDEX/NAME for a task of a foreach step.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := artifact.ParsePath(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			art, err := artifact.Resolve(ctx, e.st, p)
			if err != nil {
				return notFound(err)
			}
			r, err := e.blobs.Open(ctx, art.Digest)
			if err != nil {
				return notFound(err)
			}
			defer r.Close()
			if outFile == "" {
				_, err = io.Copy(a.out, r)
				return err
			}
			return writeFileAtomic(outFile, r)
		},
	}
	get.Flags().StringVar(&outFile, "out", "", "write to this file instead of stdout")
	ls := &cobra.Command{
		Use:   "ls RUN_ID[/STEP[/INDEX]]",
		Short: "List artifacts with their size and digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			parts := strings.SplitN(args[0], "/", 3)
			id, err := parseRunID(parts[0])
			if err != nil {
				return err
			}
			f := store.ArtifactFilter{RunID: id, Index: -1}
			if len(parts) > 1 {
				f.Step = parts[1]
			}
			if len(parts) > 2 {
				if f.Index, err = strconv.Atoi(parts[2]); err != nil || f.Index < 0 {
					return usageErr("artifact ls %s: %q is not a task index", args[0], parts[2])
				}
			}
			ctx := cmd.Context()
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			if _, err := e.st.Run(ctx, id); err != nil {
				return notFound(err)
			}
			steps, err := e.st.Steps(ctx, id)
			if err != nil {
				return err
			}
			byName := map[string]store.Step{}
			for _, s := range steps {
				byName[s.Name] = s
			}
			arts, err := e.st.Artifacts(ctx, f)
			if err != nil {
				return err
			}
			type row struct {
				Path   string `json:"path"`
				Task   string `json:"task"`
				Name   string `json:"name"`
				Size   int64  `json:"size"`
				Digest string `json:"digest"`
			}
			rows := make([]row, len(arts))
			for i, art := range arts {
				rows[i] = row{Path: artifact.PathIn(art, byName[art.Step]), Task: art.TaskKey.String(), Name: art.Name,
					Size: art.Size, Digest: art.Digest}
			}
			if a.json() {
				return a.printJSON(rows)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PATH\tSIZE\tDIGEST")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Path, r.Size, r.Digest[:12])
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(get, ls)
	return cmd
}

// writeFileAtomic writes r to path through a temporary file, so a failure
// leaves no partial file.
func writeFileAtomic(path string, r io.Reader) error {
	f, err := os.CreateTemp(dirOf(path), ".baton-*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i+1]
	}
	return "."
}
