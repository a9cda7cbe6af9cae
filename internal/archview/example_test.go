package archview_test

import (
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/archview"
	"github.com/baton-ml/baton/internal/flow"
)

// A snapshot is usually read from a store with Load; here it is built by
// hand to show the pipeline view of a two-step flow.
func Example() {
	f := &flow.Flow{Name: "ingest", Steps: []flow.Step{
		{Name: "extract", Run: "./extract.sh"},
		{Name: "load", Needs: []string{"extract"}, Run: "./load.sh", Publish: []string{"data_landed"}},
	}}
	views, _ := archview.Select([]string{"pipeline"})
	files := archview.Render(&archview.Snapshot{Flows: []archview.FlowDef{{Version: 1, Flow: f}}}, views, false, time.Time{})
	fmt.Print(files[0].Content)
	// Output:
	// # Pipeline view
	//
	// 1 flows, newest applied version of each.
	//
	// ## ingest (version 1)
	//
	// ```mermaid
	// flowchart LR
	//   s_extract["extract"]
	//   s_load["load"]
	//   s_extract --> s_load
	// ```
	//
	// | step | kind | needs | publishes | waits for | foreach | training set | retry | timeout |
	// | --- | --- | --- | --- | --- | --- | --- | --- | --- |
	// | extract | shell | — | — | — | — | — | — | — |
	// | load | shell | extract | data_landed | — | — | — | — | — |
	//
	// Triggers:
	//
	// _None._
}
