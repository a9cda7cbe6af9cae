package feature

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-ml/baton/internal/atomicfile"
)

// The event log keeps each source's events append-only in segment files,
// DIR/SOURCE/NNNNNNNN.seg. A segment starts with a header naming the field
// layout its records use; a record is uvarint(len) | payload | CRC-32C. A
// torn record at the end of the last segment (a process killed mid-write)
// is cut off by the next writer, and readers stop before it, so a record is
// either wholly in the log or not at all. Writers of one source take turns
// through flock on DIR/SOURCE/lock, so the CLI and a server may both ingest.

const (
	segMagic   = "BATONEV1"
	segMaxSize = 256 << 20
	// A seq is the segment number above segShift bits of offset.
	segShift = 36
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// segHeader describes a segment's records.
type segHeader struct {
	Source string      `json:"source"`
	Fields []fieldDecl `json:"fields"`
}

type fieldDecl struct {
	Name string    `json:"name"`
	Type FieldType `json:"type"`
}

func headerOf(src *Source) segHeader {
	h := segHeader{Source: src.Name}
	for _, n := range src.FieldOrder() {
		h.Fields = append(h.Fields, fieldDecl{n, src.Fields[n]})
	}
	return h
}

// Log is the event log of one source.
type Log struct {
	dir string
	src *Source
	hdr segHeader

	f      *os.File
	seg    int
	size   int64
	buf    []byte
	synced bool
}

// OpenLog opens (creating) the log of src under dir.
func OpenLog(dir string, src *Source) (*Log, error) {
	d := filepath.Join(dir, src.Name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("event log of %s: %w", src.Name, err)
	}
	return &Log{dir: d, src: src, hdr: headerOf(src)}, nil
}

// Close closes the log.
func (l *Log) Close() error {
	if l.f != nil {
		err := l.f.Close()
		l.f = nil
		return err
	}
	return nil
}

func (l *Log) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(l.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the event log of %s: %w", l.src.Name, err)
	}
	return func() { f.Close() }, nil
}

// Pos is a position in a log: a segment and the offset of the next record.
type Pos struct {
	Seg int
	Off int64
}

// Append writes events durably (one fsync) and sets their Seq. It returns
// where the events start and where the log ends after them: a reader whose
// position is start has everything before them.
func (l *Log) Append(evs []Event) (start, end Pos, err error) {
	unlock, err := l.lock()
	if err != nil {
		return start, end, err
	}
	defer unlock()
	if _, err = l.prepare(); err != nil {
		return start, end, err
	}
	l.buf = l.buf[:0]
	base := l.size
	start = Pos{l.seg, base}
	for i := range evs {
		evs[i].Seq = int64(l.seg)<<segShift | (base + int64(len(l.buf)))
		l.buf = appendRecord(l.buf, &evs[i])
	}
	if _, err := l.f.Write(l.buf); err != nil {
		// A partial write is a torn tail that the next writer cuts off.
		l.f.Close()
		l.f = nil
		return start, end, fmt.Errorf("append to the event log of %s: %w", l.src.Name, err)
	}
	if err := l.f.Sync(); err != nil {
		l.f.Close()
		l.f = nil
		return start, end, fmt.Errorf("sync the event log of %s: %w", l.src.Name, err)
	}
	l.size += int64(len(l.buf))
	return start, Pos{l.seg, l.size}, nil
}

// prepare positions the log at the end of a valid last segment, starting a
// new one when needed, and reads what others wrote since.
func (l *Log) prepare() ([]Event, error) {
	segs, err := segments(l.dir)
	if err != nil {
		return nil, err
	}
	var foreign []Event
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		if l.f == nil || last != l.seg {
			if l.f != nil {
				l.f.Close()
				l.f = nil
			}
			f, err := os.OpenFile(segPath(l.dir, last), os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			hdr, end, err := scanSegment(f, last, 0, nil)
			if err != nil {
				f.Close()
				return nil, err
			}
			if err := f.Truncate(end); err != nil {
				f.Close()
				return nil, err
			}
			l.f, l.seg, l.size = f, last, end
			if !sameHeader(hdr, l.hdr) {
				l.f.Close()
				l.f = nil
			}
		} else if st, err := l.f.Stat(); err != nil {
			return nil, err
		} else if st.Size() != l.size {
			// Someone else appended: read (and keep) what they wrote.
			var end int64
			_, end, err = scanSegment(l.f, l.seg, l.size, func(_ *segHeader, ev *Event) error {
				e := *ev
				e.Vals = slices.Clone(ev.Vals)
				foreign = append(foreign, e)
				return nil
			})
			if err != nil {
				return nil, err
			}
			if err := l.f.Truncate(end); err != nil {
				return nil, err
			}
			l.size = end
		}
	}
	if l.f != nil && l.size < segMaxSize {
		_, err := l.f.Seek(l.size, io.SeekStart)
		return foreign, err
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	next := 1
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	// The header is written and synced under a temporary name, then the
	// file is renamed into place: a segment exists with its whole header
	// or not at all, so a kill here cannot leave a log nobody can open.
	tmp, err := os.CreateTemp(l.dir, ".new-segment-*")
	if err != nil {
		return nil, fmt.Errorf("new segment of %s: %w", l.src.Name, err)
	}
	hb, _ := json.Marshal(l.hdr)
	b := append([]byte(segMagic), binary.AppendUvarint(nil, uint64(len(hb)))...)
	b = append(b, hb...)
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	if err := os.Rename(tmp.Name(), segPath(l.dir, next)); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("new segment of %s: %w", l.src.Name, err)
	}
	atomicfile.SyncDir(l.dir)
	l.f, l.seg, l.size = tmp, next, int64(len(b))
	return foreign, nil
}

func sameHeader(a, b segHeader) bool {
	return a.Source == b.Source && slices.Equal(a.Fields, b.Fields)
}

func segPath(dir string, n int) string { return filepath.Join(dir, fmt.Sprintf("%08d.seg", n)) }

func segments(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []int
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".seg"); ok {
			if i, err := strconv.Atoi(n); err == nil {
				out = append(out, i)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func appendRecord(b []byte, ev *Event) []byte {
	var p [binary.MaxVarintLen64 * 4]byte
	n := binary.PutVarint(p[:], ev.Time)
	n += binary.PutVarint(p[n:], ev.Ingested)
	n += binary.PutUvarint(p[n:], uint64(len(ev.Key)))
	size := n + len(ev.Key)
	for _, v := range ev.Vals {
		switch v.Kind {
		case KindNum:
			size += 9
		case KindStr:
			size += 1 + uvarintLen(uint64(len(v.Str))) + len(v.Str)
		default:
			size++
		}
	}
	b = binary.AppendUvarint(b, uint64(size))
	start := len(b)
	b = append(b, p[:n]...)
	b = append(b, ev.Key...)
	for _, v := range ev.Vals {
		b = AppendValue(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// AppendValue encodes one field value: a kind byte, then 8 bytes of a
// number or a length-prefixed string. The log and the Redis online store's
// members (package online) share it.
func AppendValue(b []byte, v Value) []byte {
	b = append(b, byte(v.Kind))
	switch v.Kind {
	case KindNum:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Num))
	case KindStr:
		b = binary.AppendUvarint(b, uint64(len(v.Str)))
		b = append(b, v.Str...)
	}
	return b
}

// DecodeValue reads one value made by AppendValue, returning the rest.
func DecodeValue(p []byte) (Value, []byte, bool) {
	if len(p) == 0 {
		return Value{}, p, false
	}
	k := Kind(p[0])
	p = p[1:]
	switch k {
	case KindNull:
		return Value{}, p, true
	case KindNum:
		if len(p) < 8 {
			return Value{}, p, false
		}
		return Value{Kind: KindNum, Num: math.Float64frombits(binary.LittleEndian.Uint64(p))}, p[8:], true
	case KindStr:
		sl, n := binary.Uvarint(p)
		if n <= 0 || uint64(len(p)-n) < sl {
			return Value{}, p, false
		}
		return Value{Kind: KindStr, Str: string(p[n : n+int(sl)])}, p[n+int(sl):], true
	}
	return Value{}, p, false
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

var errTorn = errors.New("torn record")

// decodeRecord reads one payload into ev (reusing ev.Vals).
func decodeRecord(p []byte, nfields int, ev *Event) error {
	var n int
	ev.Time, n = binary.Varint(p)
	if n <= 0 {
		return errTorn
	}
	p = p[n:]
	ev.Ingested, n = binary.Varint(p)
	if n <= 0 {
		return errTorn
	}
	p = p[n:]
	kl, n := binary.Uvarint(p)
	if n <= 0 || uint64(len(p)-n) < kl {
		return errTorn
	}
	ev.Key = string(p[n : n+int(kl)])
	p = p[n+int(kl):]
	ev.Vals = ev.Vals[:0]
	for range nfields {
		v, rest, ok := DecodeValue(p)
		if !ok {
			return errTorn
		}
		ev.Vals, p = append(ev.Vals, v), rest
	}
	if len(p) != 0 {
		return errTorn
	}
	return nil
}

// scanSegment reads a segment from offset from (0: from its start) and
// calls fn for each whole record; it returns the header and the offset after
// the last whole record.
func scanSegment(f *os.File, seg int, from int64, fn func(*segHeader, *Event) error) (segHeader, int64, error) {
	var hdr segHeader
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return hdr, 0, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(segMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, []byte(segMagic)) {
		return hdr, 0, fmt.Errorf("%s: not an event log segment", f.Name())
	}
	hl, err := binary.ReadUvarint(br)
	if err != nil || hl > 1<<20 {
		return hdr, 0, fmt.Errorf("%s: bad segment header", f.Name())
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(br, hb); err != nil {
		return hdr, 0, fmt.Errorf("%s: bad segment header", f.Name())
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return hdr, 0, fmt.Errorf("%s: bad segment header: %w", f.Name(), err)
	}
	off := int64(len(segMagic)+uvarintLen(hl)) + int64(hl)
	if from > off {
		if _, err := f.Seek(from, io.SeekStart); err != nil {
			return hdr, 0, err
		}
		br.Reset(f)
		off = from
	}
	var ev Event
	var p []byte
	for {
		size, err := binary.ReadUvarint(br)
		if err != nil || size > maxLine*4 {
			return hdr, off, nil
		}
		if cap(p) < int(size)+4 {
			p = make([]byte, size+4)
		}
		p = p[:size+4]
		if _, err := io.ReadFull(br, p); err != nil {
			return hdr, off, nil
		}
		if crc32.Checksum(p[:size], crcTable) != binary.LittleEndian.Uint32(p[size:]) {
			return hdr, off, nil
		}
		if err := decodeRecord(p[:size], len(hdr.Fields), &ev); err != nil {
			return hdr, off, nil
		}
		ev.Seq = int64(seg)<<segShift | off
		off += int64(uvarintLen(size)) + int64(size) + 4
		if fn != nil {
			if err := fn(&hdr, &ev); err != nil {
				return hdr, off, err
			}
		}
	}
}

// ReadFrom calls fn for every whole event from position p on, in log
// order, mapped to the source's current field order (ev is reused), and
// returns the position after the last one. The zero Pos is the start.
func (l *Log) ReadFrom(p Pos, fn func(ev *Event) error) (Pos, error) {
	segs, err := segments(l.dir)
	if err != nil {
		return p, err
	}
	cur := l.src.FieldOrder()
	out := Event{Vals: make([]Value, len(cur))}
	for _, n := range segs {
		if n < p.Seg {
			continue
		}
		from := int64(0)
		if n == p.Seg {
			from = p.Off
		}
		f, err := os.Open(segPath(l.dir, n))
		if err != nil {
			return p, err
		}
		var mapping []int
		_, end, err := scanSegment(f, n, from, func(hdr *segHeader, ev *Event) error {
			if mapping == nil {
				mapping = fieldMapping(cur, hdr)
			}
			out.Key, out.Time, out.Ingested, out.Seq = ev.Key, ev.Time, ev.Ingested, ev.Seq
			for i, j := range mapping {
				if j >= 0 && j < len(ev.Vals) {
					out.Vals[i] = ev.Vals[j]
				} else {
					out.Vals[i] = Value{}
				}
			}
			return fn(&out)
		})
		f.Close()
		if err != nil {
			return p, err
		}
		p = Pos{n, end}
	}
	return p, nil
}

// Scan reads every event of the log in append order. ev and its Vals are
// reused between calls; fields are mapped to the source's current field
// order (a field a segment lacks is null).
func (l *Log) Scan(fn func(ev *Event) error) error {
	_, err := l.ReadFrom(Pos{}, fn)
	return err
}

// fieldMapping maps the current field order to a segment's layout: a
// segment written under an older definition keeps the fields both share,
// and a field it lacks reads as null.
func fieldMapping(cur []string, hdr *segHeader) []int {
	m := make([]int, len(cur))
	for i, name := range cur {
		m[i] = slices.IndexFunc(hdr.Fields, func(f fieldDecl) bool { return f.Name == name })
	}
	return m
}

// DeadLetter appends rejected events to DIR/SOURCE.deadletter.jsonl, so
// nothing is dropped silently.
func DeadLetter(dir, source string, rs []Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, source+".deadletter.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("dead-letter log of %s: %w", source, err)
	}
	defer f.Close()
	var b bytes.Buffer
	now := time.Now().UTC()
	for _, r := range rs {
		r.Source = source
		if r.At.IsZero() {
			r.At = now
		}
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		return err
	}
	return f.Sync()
}
