// Package parquet writes training sets as Parquet files: feature.Build's
// Parquet writer, kept apart from package feature so that what imports
// features does not link a Parquet library.
package parquet

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	pq "github.com/parquet-go/parquet-go"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/flow"
)

// Write writes label columns (double when every cell is a number,
// else string) and feature columns, all optional, with the feature versions
// in the file's key-value metadata.
//
// It is a feature.TableWriter, for BuildOptions.Parquet.
func Write(w io.Writer, t feature.Table) error {
	l, cols, meta := t.Labels, t.Columns, t.Meta
	type colDef struct {
		name    string
		label   int // label column index, or -1
		feature int // feature column index, or -1
		kind    string
	}
	var defs []colDef
	taken := map[string]bool{}
	for i, h := range l.Header {
		kind := "double"
		for _, row := range l.Rows {
			if row[i] == "" {
				continue
			}
			if _, err := strconv.ParseFloat(row[i], 64); err != nil {
				kind = "string"
				break
			}
		}
		defs = append(defs, colDef{h, i, -1, kind})
		taken[h] = true
	}
	for i, c := range cols {
		kind := "double"
		switch c.Type {
		case feature.String:
			kind = "string"
		case feature.Bool:
			kind = "bool"
		}
		name := c.Feature.Name
		if taken[name] {
			return flow.Errors{{Field: "features", Msg: fmt.Sprintf("feature %s has the name of a labels column; rename the column", name)}}
		}
		defs = append(defs, colDef{name, -1, i, kind})
	}
	g := pq.Group{}
	for _, d := range defs {
		var n pq.Node
		switch d.kind {
		case "string":
			n = pq.String()
		case "bool":
			n = pq.Leaf(pq.BooleanType)
		default:
			n = pq.Leaf(pq.DoubleType)
		}
		g[d.name] = pq.Compressed(pq.Optional(n), &pq.Zstd)
	}
	schema := pq.NewSchema("training_set", g)
	// A Group orders its columns by name; rows are built in that order.
	index := map[string]int{}
	for i, f := range schema.Fields() {
		index[f.Name()] = i
	}
	mb, _ := json.Marshal(meta)
	pw := pq.NewWriter(w, schema, pq.KeyValueMetadata("baton", string(mb)))
	rows := make([]pq.Row, 0, 1024)
	flush := func() error {
		if _, err := pw.WriteRows(rows); err != nil {
			return err
		}
		rows = rows[:0]
		return nil
	}
	for r, lrow := range l.Rows {
		row := make(pq.Row, len(defs))
		for _, d := range defs {
			ci := index[d.name]
			var v pq.Value
			if d.label >= 0 {
				s := lrow[d.label]
				switch {
				case s == "":
					v = pq.NullValue()
				case d.kind == "double":
					f, _ := strconv.ParseFloat(s, 64)
					v = pq.ValueOf(f)
				default:
					v = pq.ValueOf(s)
				}
			} else {
				cv := cols[d.feature].Values[r]
				switch {
				case cv.Kind == feature.KindNull:
					v = pq.NullValue()
				case d.kind == "bool":
					v = pq.ValueOf(cv.Num != 0)
				case d.kind == "string":
					v = pq.ValueOf(cv.Str)
				default:
					v = pq.ValueOf(cv.Num)
				}
			}
			def := 1
			if v.IsNull() {
				def = 0
			}
			row[ci] = v.Level(0, def, ci)
		}
		rows = append(rows, row)
		if len(rows) == cap(rows) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return pw.Close()
}

var _ feature.TableWriter = Write
