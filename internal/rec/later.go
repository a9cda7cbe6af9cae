package rec

import (
	"context"

	"github.com/baton-ml/baton/internal/fault"
)

type blendModel struct{ W []float64 }

func (*blendModel) scores(*base, int, []float32) {}

type mtModel struct{ K int }

func (*mtModel) scores(*base, int, []float32) {}

func trainBlend(context.Context, *base, *Dataset, *params) (scorer, error) {
	return nil, fault.Errorf(fault.Unsupported, "blend: not yet")
}

func trainMultiTask(context.Context, *base, *params) (scorer, error) {
	return nil, fault.Errorf(fault.Unsupported, "multitask: not yet")
}
