package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/schema"
)

func (a *app) flowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flow",
		Short: "Register and inspect flow definitions",
	}
	var codeLimit string
	apply := &cobra.Command{
		Use:   "apply FILE...",
		Short: "Validate flow files and register them (a changed file, or a change in its folder, makes a new version)",
		Long: `Validate flow files and register them. A flow's version holds a code snapshot of
the flow file's folder (less what .batonignore leaves out): its steps run in
that snapshot, so editing a script makes a new version, and runs of older
versions keep the code they were registered with.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.open(ctx, true)
			if err != nil {
				return err
			}
			defer e.Close()
			// Every file is checked before any is registered: one bad
			// file registers nothing.
			parsed, err := a.readDocs(ctx, e, args, codeLimit)
			if err != nil {
				return err
			}
			out, err := catalog.Store(ctx, e.st, parsed)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(out)
			}
			for _, o := range out {
				if len(o.Contracts) > 0 {
					fmt.Fprintf(a.out, "signals %s: %d contract(s), %d new or changed\n", o.Path, len(o.Contracts), len(o.ContractsChanged))
				}
				if o.Flow == "" {
					continue
				}
				state := "unchanged"
				if o.Created {
					state = "registered"
				}
				fmt.Fprintf(a.out, "flow %s v%d %s%s\n", o.Flow, o.Version, state, codeNote(o.Code, o.CodeSize))
			}
			return nil
		},
	}
	addCodeLimit(apply, &codeLimit)
	list := &cobra.Command{
		Use:   "list",
		Short: "List registered flows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			fs, err := e.st.Flows(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(fs)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FLOW\tLATEST\tVERSIONS\tUPDATED")
			for _, f := range fs {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", f.Name, f.LatestVersion, f.Versions, f.UpdatedAt.Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	var versions bool
	var version int
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a registered flow (its newest version, --version N, or --versions)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.open(ctx, false)
			if err != nil {
				return err
			}
			defer e.Close()
			if versions {
				vs, err := e.st.FlowVersions(ctx, args[0])
				if err != nil {
					return notFound(err)
				}
				if a.json() {
					return a.printJSON(vs)
				}
				tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tCREATED\tDIGEST\tCODE\tCODE SIZE\tPATH")
				for _, v := range vs {
					code, size := "-", "-"
					if v.Code != "" {
						code, size = v.Code[:12], flow.Size(v.CodeSize)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Version, v.CreatedAt.Format(time.DateTime), v.Digest[:12], code, size, v.Path)
				}
				return tw.Flush()
			}
			v, err := e.st.FlowVersion(ctx, args[0], version)
			if err != nil {
				return notFound(err)
			}
			if a.json() {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.out, "# flow %s version %d, registered %s from %s\n", v.Flow, v.Version,
				v.CreatedAt.Format(time.DateTime), v.Path)
			if v.Code != "" {
				fmt.Fprintf(a.out, "# code snapshot %s (%s)\n", v.Code, flow.Size(v.CodeSize))
			}
			if v.Source != "" {
				fmt.Fprint(a.out, v.Source)
				return nil
			}
			_, err = a.out.Write(append(v.Spec, '\n'))
			return err
		},
	}
	show.Flags().BoolVar(&versions, "versions", false, "list every version")
	show.Flags().IntVar(&version, "version", 0, "show this version (default: the newest)")
	schemaCmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of flow files (for editor completion)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := a.out.Write(schema.Flow)
			return err
		},
	}
	unblock := &cobra.Command{
		Use:   "unblock NAME",
		Short: "Let a strict_sequential flow blocked by a failed run start runs again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer e.Close()
			if _, err := e.st.FlowVersion(cmd.Context(), args[0], 0); err != nil {
				return notFound(err)
			}
			return e.st.Unblock(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(apply, list, show, schemaCmd, unblock)
	return cmd
}

// codeNote describes a version's code snapshot after its number.
func codeNote(code string, size int64) string {
	if code == "" {
		return ""
	}
	return fmt.Sprintf(", code %s (%s)", code[:12], flow.Size(size))
}
