package sdk_test

import (
	"context"
	"fmt"
	"os"

	"github.com/baton-ml/baton/client"
	"github.com/baton-ml/baton/sdk"
)

// A flow of Go functions: start writes the items, square runs once per item
// (a foreach), and sum joins every square's output. Every output is an
// artifact that the client can read back later.
func Example() {
	home, _ := os.MkdirTemp("", "baton-example-")
	defer os.RemoveAll(home)
	ctx := context.Background()

	f := &sdk.Flow{
		Name:   "squares",
		Params: []sdk.Param{{Name: "n", Type: "int", Default: 4}},
		Steps: []sdk.Step{
			{Name: "start", Run: func(ctx context.Context, t *sdk.Task) error {
				var n int
				if err := t.Param("n", &n); err != nil {
					return err
				}
				items := make([]int, n)
				for i := range items {
					items[i] = i + 1
				}
				return t.OutputJSON(ctx, "items.json", items)
			}},
			{Name: "square", Needs: []string{"start"}, Foreach: "items.json", Run: func(ctx context.Context, t *sdk.Task) error {
				var x int
				if err := t.Item(&x); err != nil {
					return err
				}
				return t.OutputJSON(ctx, "square.json", x*x)
			}},
			{Name: "sum", Needs: []string{"square"}, Run: func(ctx context.Context, t *sdk.Task) error {
				inputs, err := t.Inputs(ctx, "square")
				if err != nil {
					return err
				}
				total := 0
				for _, in := range inputs {
					b, err := in.Read(ctx)
					if err != nil {
						return err
					}
					var v int
					fmt.Sscan(string(b), &v)
					total += v
				}
				return t.OutputJSON(ctx, "total.json", total)
			}},
		},
	}
	res, err := sdk.Run(ctx, f, sdk.Options{Home: home, Params: map[string]string{"n": "5"}})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("run", res.RunID, res.Status)

	c, err := client.Open(ctx, client.Options{Home: home})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer c.Close()
	a, err := c.Artifact(ctx, fmt.Sprintf("%d/sum/total.json", res.RunID))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	var total int
	a.JSON(ctx, &total)
	fmt.Println("1² + 2² + 3² + 4² + 5² =", total)
	// Output:
	// run 1 succeeded
	// 1² + 2² + 3² + 4² + 5² = 55
}
