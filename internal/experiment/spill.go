package experiment

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Spill is a durable local log of records the store could not take yet
// (exposures of a failed batch, or past the in-memory bound): each append
// is framed (length, CRC-32C, JSON) and fsynced before it returns, and
// Replay hands everything back to be written, then empties the log. A
// record is replayed at least once; the store ignores repeated exposures,
// so a crash between a replay's write and the truncation does nothing
// twice.
type Spill[T any] struct {
	path string
	mu   sync.Mutex
	f    *os.File
	n    int // records in the file
}

// ErrSpillCorrupt is a spill log whose content fails its checksum before
// its end: it is left in place for a person to look at, never dropped.
var ErrSpillCorrupt = errors.New("spill log is corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is 4 bytes of length and 4 of CRC-32C of the payload.
const frame = 8

// OpenSpill opens (creating) the spill log at path. A torn last record
// (a crash during an append, which therefore never returned) is cut off;
// damage before the end is ErrSpillCorrupt.
func OpenSpill[T any](path string) (*Spill[T], error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	s := &Spill[T]{path: path, f: f}
	n, good, err := s.scan(nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.Size() > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, err
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	s.n = n
	syncDir(filepath.Dir(path))
	return s, nil
}

// Close closes the file.
func (s *Spill[T]) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}

// Len is the number of records waiting.
func (s *Spill[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Append writes records durably (one frame each, one fsync for all).
func (s *Spill[T]) Append(recs []T) error { return s.write(recs, true) }

// Write appends records without an fsync: they survive the process being
// killed (they are in the kernel's page cache once Write returns), not the
// machine losing power. For a journal of records accepted in memory, which
// the flush that writes them to the store retires.
func (s *Spill[T]) Write(recs []T) error { return s.write(recs, false) }

// Path is the log's file.
func (s *Spill[T]) Path() string { return s.path }

func (s *Spill[T]) write(recs []T, sync bool) error {
	if len(recs) == 0 {
		return nil
	}
	var buf []byte
	for i := range recs {
		p, err := json.Marshal(recs[i])
		if err != nil {
			return err
		}
		var h [frame]byte
		binary.LittleEndian.PutUint32(h[:4], uint32(len(p)))
		binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(p, castagnoli))
		buf = append(append(buf, h[:]...), p...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	end, err := s.f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := s.f.Write(buf); err != nil {
		// Nothing half-written stays: the next open would cut it anyway.
		_ = s.f.Truncate(end)
		return fmt.Errorf("spill %s: %w", s.path, err)
	}
	if sync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("spill %s: %w", s.path, err)
		}
	}
	s.n += len(recs)
	return nil
}

// Replay passes the records waiting, in chunks of at most chunk, to
// write; when every write succeeded the log is emptied. On an error the
// log is kept whole (the chunks written will be written again; writes
// must be idempotent). It returns how many records were written.
func (s *Spill[T]) Replay(chunk int, write func([]T) error) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return 0, nil
	}
	var batch []T
	done := 0
	_, _, err := s.scan(func(r T) error {
		batch = append(batch, r)
		if len(batch) >= chunk {
			if err := write(batch); err != nil {
				return err
			}
			done += len(batch)
			batch = batch[:0]
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		if err = write(batch); err == nil {
			done += len(batch)
		}
	}
	if err != nil {
		return done, err
	}
	if err := s.f.Truncate(0); err != nil {
		return done, err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return done, err
	}
	if err := s.f.Sync(); err != nil {
		return done, err
	}
	s.n = 0
	return done, nil
}

// scan reads every whole record from the start, calling fn (if any) on
// each; it returns their number and the offset after the last one. A short
// or failing frame at the very end is a torn append; anywhere else it is
// ErrSpillCorrupt.
func (s *Spill[T]) scan(fn func(T) error) (int, int64, error) {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return 0, 0, err
	}
	n, off := 0, 0
	for off < len(b) {
		if len(b)-off < frame {
			break // torn header at the end
		}
		size := int(binary.LittleEndian.Uint32(b[off:]))
		sum := binary.LittleEndian.Uint32(b[off+4:])
		end := off + frame + size
		if size < 0 || end > len(b) {
			// A torn append leaves a short record at the very end; a
			// length damaged in the middle also points past the end, but
			// whole records follow it.
			if at := wholeFrameAfter(b, off); at >= 0 {
				return n, int64(off), fmt.Errorf("%s at byte %d: a record's length points past the end, but a whole record follows at byte %d: %w",
					s.path, off, at, ErrSpillCorrupt)
			}
			break // torn payload at the end
		}
		p := b[off+frame : end]
		if crc32.Checksum(p, castagnoli) != sum {
			if end == len(b) {
				break // the last append was torn
			}
			return n, int64(off), fmt.Errorf("%s at byte %d: checksum mismatch: %w", s.path, off, ErrSpillCorrupt)
		}
		var r T
		if err := json.Unmarshal(p, &r); err != nil {
			return n, int64(off), fmt.Errorf("%s at byte %d: %v: %w", s.path, off, err, ErrSpillCorrupt)
		}
		if fn != nil {
			if err := fn(r); err != nil {
				return n, int64(off), err
			}
		}
		n++
		off = end
	}
	return n, int64(off), nil
}

// wholeFrameAfter returns the offset of a whole record (length in bounds,
// checksum matching) that starts after off, or -1.
func wholeFrameAfter(b []byte, off int) int {
	for at := off + 1; at+frame <= len(b); at++ {
		size := int(binary.LittleEndian.Uint32(b[at:]))
		end := at + frame + size
		if size <= 0 || end > len(b) {
			continue
		}
		if crc32.Checksum(b[at+frame:end], castagnoli) == binary.LittleEndian.Uint32(b[at+4:]) {
			return at
		}
	}
	return -1
}

// syncDir makes a new file's directory entry durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
