package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/archview"
)

// docsCmd generates the RAD-AI architecture views from the home's store.
func (a *app) docsCmd() *cobra.Command {
	var out string
	var views []string
	cmd := &cobra.Command{
		Use:   "docs",
		Short: "Write the architecture views (pipeline, signals, lineage, models, boundary, debt, quality) from the store",
		Long: "Generates the RAD-AI architecture views as Markdown with Mermaid diagrams from what is applied and\n" +
			"recorded in the store. With --out, writes one file per view and an index README.md into DIR;\n" +
			"otherwise prints the chosen views. Views: " + strings.Join(archview.ViewNames(), ", ") + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Check the names before opening anything: a typo is bad input.
			chosen, err := archview.Select(views)
			if err != nil {
				return usageErr("%v", err)
			}
			e, err := a.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer e.Close()
			snap, err := archview.Load(cmd.Context(), e.st, archview.Options{Blobs: e.blobs})
			if err != nil {
				return fmt.Errorf("docs: %w", err)
			}
			files := archview.Render(snap, chosen, out != "", time.Now())
			if out != "" {
				if err := archview.WriteDir(out, files); err != nil {
					return fmt.Errorf("docs: %w", err)
				}
				fmt.Fprintf(a.err, "wrote %d files to %s\n", len(files), out)
				return nil
			}
			for i, f := range files {
				if i > 0 {
					fmt.Fprintln(a.out)
				}
				fmt.Fprint(a.out, f.Content)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder to write the views and their index into (default: print to stdout)")
	cmd.Flags().StringArrayVar(&views, "view", nil, "a view to generate (repeatable; default all): "+strings.Join(archview.ViewNames(), ", "))
	return cmd
}
