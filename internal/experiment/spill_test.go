package experiment

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type spillRec struct {
	Unit string `json:"unit"`
}

func spillOf(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spill.log")
	s, err := OpenSpill[spillRec](path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := s.Append([]spillRec{{Unit: string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return path
}

// A length damaged in the middle of the log is corruption, not a torn
// tail: the log is left whole and opening it is an error, where it used to
// be cut at the damage, silently dropping the records after it.
func TestSpillDamagedLengthIsAnError(t *testing.T) {
	path := spillOf(t, 10)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := len(b)
	rec := size / 10 // every record has the same size
	b[3*rec+2] = 0x7f
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSpill[spillRec](path); !errors.Is(err, ErrSpillCorrupt) {
		t.Fatalf("open a log damaged in the middle: %v, want ErrSpillCorrupt", err)
	}
	if st, _ := os.Stat(path); st.Size() != int64(size) {
		t.Fatalf("the damaged log was cut to %d of %d bytes", st.Size(), size)
	}
}

// A torn last append is cut off, and every whole record before it stays.
func TestSpillTornTailIsCut(t *testing.T) {
	path := spillOf(t, 10)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSpill[spillRec](path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 9 {
		t.Fatalf("%d records kept, want 9", s.Len())
	}
}
