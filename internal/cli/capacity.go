package cli

import (
	"math"
	"strings"

	"github.com/spf13/cobra"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// capacityFlags are what a worker offers the queue's tasks.
type capacityFlags struct {
	cpu    float64
	memory string
	gpu    int
	labels []string
}

func (c *capacityFlags) register(cmd *cobra.Command) {
	cmd.Flags().Float64Var(&c.cpu, "cpu", 0, "cores this worker offers tasks that declare resources (default: the machine's)")
	cmd.Flags().StringVar(&c.memory, "memory", "", "memory it offers, such as 16Gi (default: the machine's)")
	cmd.Flags().IntVar(&c.gpu, "gpu", 0, "GPUs it offers")
	cmd.Flags().StringArrayVar(&c.labels, "label", nil, "a label it carries, key=value (repeat for more); a step's labels: must all match")
}

// capacity is the worker's capacity from the flags, the machine's where
// they say nothing.
func (c *capacityFlags) capacity() (store.Capacity, error) {
	cp := engine.MachineCapacity()
	switch {
	case math.IsNaN(c.cpu) || c.cpu < 0 || c.cpu > 4096 || (c.cpu > 0 && c.cpu < 0.001):
		// NaN would pass the bounds and quietly mean "the machine's";
		// less than a thousandth would offer nothing.
		return cp, usageErr("--cpu %g: a number of cores, from 0.001 to 4096", c.cpu)
	case c.cpu > 0:
		cp.CPU = int64(math.Round(c.cpu * 1000))
	}
	if c.memory != "" {
		n, err := flow.ParseBytes(c.memory)
		if err != nil {
			return cp, usageErr("--memory: %v", err)
		}
		cp.Mem = n >> 20
	}
	if c.gpu < 0 {
		return cp, usageErr("--gpu %d: a count of GPUs", c.gpu)
	}
	cp.GPU = c.gpu
	for _, l := range c.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return cp, usageErr("--label %q: write key=value", l)
		}
		if m := flow.LabelProblem(k, v); m != "" {
			return cp, usageErr("--label: %s", m)
		}
		if cp.Labels == nil {
			cp.Labels = map[string]string{}
		}
		cp.Labels[k] = v
	}
	return cp, nil
}
