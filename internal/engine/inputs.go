package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/store"
)

// A shell step's inputs are materialized once, before its first task runs,
// under in/STEP of the run's scratch folder, in the BATON_INPUT_DIR layout
// of the flows contract: <up>/<name> for a plain upstream step,
// <up>/<index>/<name> for a foreach step. Files are read-only copies, never
// links to the stored blobs, which a task could chmod and change for every
// run that shares them.
//
// A join over a wide foreach makes thousands of folders and files. On a
// disk that is the kernel's work, not the copying (on ext4 without a
// journal, mostly the inode allocator stepping over recently deleted
// inodes), and two kernel locks decide how much of it can overlap:
//   - an entry is made or removed in a folder under that folder's lock, so
//     thousands of <index> folders made in one <up> folder are made one at
//     a time: each is filled instead in a staging folder of one of
//     inputWorkers goroutines and moved into place whole (one rename);
//   - removing a folder on a disk mounted with discard waits for the
//     device to discard its block, still under its parent's lock: each
//     folder is moved into a drop folder of one of inputWorkers goroutines
//     and removed there, so the waits overlap.
//
// Staging and drop folders sit beside the step folders in in/, named with a
// leading dot that no step name has and a random suffix, on the same file
// system (a rename never copies).
//
// Tasks run as baton's user and can change anything in the scratch folder:
// one may put a link in place of its BATON_INPUT_DIR, of in/, of an
// upstream step's folder, or of a folder not made yet, or of a folder
// above. Baton never follows such a link: the run's scratch folder is
// opened once, by the runner when first needed (openScratch), each step's
// filling starts from that descriptor once its path is checked to still
// lead there, and every folder below it is reached from the descriptor
// one name at a time, refusing links (openBeneath); folders are made and
// removed relative to their parent's descriptor. A link in the way fails
// the filling, and removal leaves it, and whatever is behind it, to the
// removal of the scratch folder, which removes a link itself.

// inputWorkers is how many goroutines fill, and remove, a step's inputs.
const inputWorkers = 4

// inputDir is one step's materialized inputs.
type inputDir struct {
	// mu is held while the inputs are filled or removed: the step's first
	// task fills them while the others wait.
	mu      sync.Mutex
	filled  bool
	removed bool
	path    string // BATON_INPUT_DIR
	scratch string // the run's scratch folder
	err     error
	// root is the run's scratch folder, open (a copy of the runner's
	// descriptor) from the filling to the removal (when rooted); every
	// path below is relative to it.
	root   int
	rooted bool
	rel    string // in/STEP
	// What was made, for remove: the folders made in place (in/STEP and
	// the <up> folders of foreach steps in it, parents first), and the
	// units moved into them.
	dirs  []string
	units []*inputUnit
	// noOpenat2 is set when the kernel (or a seccomp filter) refuses
	// openat2: openBeneath then walks one name at a time.
	noOpenat2 atomic.Bool
}

// inputUnit is a folder of inputs made off to the side and moved in whole:
// a foreach task's <up>/<index>, or a plain step's <up>.
type inputUnit struct {
	parent  string // the folder it goes in (one of inputDir.dirs)
	name    string // its name there
	stage   string // its name while staged or dropped: unique in the step
	subdirs []string
	files   []inputFile
	placed  bool // moved into parent
}

type inputFile struct{ name, digest string }

// add records artifact a in u, with the folders its name needs.
func (u *inputUnit) add(a store.Artifact) {
	for i := range len(a.Name) {
		if a.Name[i] != '/' {
			continue
		}
		if d := a.Name[:i]; !containsStr(u.subdirs, d) {
			u.subdirs = append(u.subdirs, d)
		}
	}
	u.files = append(u.files, inputFile{name: a.Name, digest: a.Digest})
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// errLinkInPlace is what filling a step's inputs fails with when a task
// put a link, or a file, where one of baton's folders goes.
var errLinkInPlace = errors.New("a link or a file is where baton makes a folder (a task of the run put it there; baton never follows a link)")

// inputDir returns the folder of the inputs of step s's tasks that run in
// context ctxPath (see stepRun.context), filling it on the first call.
func (r *runner) inputDir(ctx context.Context, s *stepRun, ctxPath []int, base int) (string, error) {
	key := inputKey(s.def.Name, ctxPath, base)
	s.inMu.Lock()
	in := s.inputs[key]
	if in == nil {
		if s.inputs == nil {
			s.inputs = map[string]*inputDir{}
		}
		in = &inputDir{removed: s.inputsGone}
		s.inputs[key] = in
	}
	s.inMu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.filled {
		in.filled = true
		if in.removed {
			in.err = errors.New("the step's inputs were removed: it has ended")
		} else {
			in.err = r.fillInputs(ctx, s, in, key, ctxPath, base)
			if errors.Is(in.err, errLinkInPlace) {
				in.err = fmt.Errorf("%w; a step's tasks must leave what is in %s as it is", in.err, filepath.Join(r.tmp, "in"))
			}
		}
	}
	return in.path, in.err
}

// removeInputs removes every context's inputs of s, and any made later.
func (s *stepRun) removeInputs() { removeAll(s.takeInputs()) }

// takeInputs marks the inputs of s gone (until a loop runs it again) and
// returns those made, for removeAll.
func (s *stepRun) takeInputs() []*inputDir {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	s.inputsGone = true
	ins := make([]*inputDir, 0, len(s.inputs))
	for _, in := range s.inputs {
		ins = append(ins, in)
	}
	s.inputs = nil
	return ins
}

func removeAll(ins []*inputDir) {
	for _, in := range ins {
		in.remove()
	}
}

// fillInputs materializes, in in/KEY, the artifacts of the steps s needs
// as a task in context ctxPath sees them; see the top of this file. A need
// in the context's level or above is one task (<up>/<name>); a need one
// level below is joined (<up>/<index>/<name>, the tasks under ctxPath).
func (r *runner) fillInputs(ctx context.Context, s *stepRun, in *inputDir, key string, ctxPath []int, base int) error {
	in.rel = filepath.Join("in", key)
	in.scratch = r.tmp
	in.path = filepath.Join(r.tmp, in.rel)
	root, err := r.openScratch()
	if err != nil {
		return in.placeErr(err)
	}
	in.root, in.rooted = root, true
	if err := in.mkdir("in", false); err != nil {
		return err
	}
	if err := in.mkdir(in.rel, true); err != nil {
		return err
	}
	needs := s.needs
	if w := s.loop; w != nil && base > 0 && r.leadsBack(w, s) {
		// A loop's head, from its second iteration, sees what the
		// switch step's last iteration wrote.
		needs = append(slices.Clip(needs), w)
	}
	for _, up := range needs {
		var shape store.Shape
		var ubase int
		if up == s.loop && !slices.Contains(s.needs, up) {
			// The loop's switch (only a head sees it, pending again):
			// its last iteration, one task per iteration.
			ubase = base - 1
		} else if shape, ubase, err = r.placeOf(ctx, up); err != nil {
			return err
		}
		joined := len(up.scope) > len(ctxPath)
		f := store.ArtifactFilter{RunID: r.run.ID, Step: up.def.Name}
		lo := 0
		switch {
		case joined:
			var hi int
			var ok bool
			if lo, hi, ok = shape.Children(ctxPath); !ok {
				return fmt.Errorf("step %s has no tasks under %s", up.def.Name, store.FormatPath(ctxPath))
			}
			if hi == lo {
				continue
			}
			lo += ubase
			f.Index, f.Until = lo, hi+ubase
		default:
			idx, ok := shape.Index(ctxPath[:len(up.scope)])
			if !ok {
				return fmt.Errorf("step %s has no task %s", up.def.Name, store.FormatPath(ctxPath[:len(up.scope)]))
			}
			f.Index = ubase + idx
		}
		arts, err := r.e.st.Artifacts(ctx, f)
		if err != nil {
			return err
		}
		if len(arts) == 0 {
			continue
		}
		if !joined {
			u := &inputUnit{parent: in.rel, name: up.def.Name}
			for _, a := range arts {
				u.add(a)
			}
			in.units = append(in.units, u)
			continue
		}
		p := filepath.Join(in.rel, up.def.Name)
		if err := in.mkdir(p, true); err != nil {
			return err
		}
		byIndex := map[int]*inputUnit{}
		for _, a := range arts {
			u := byIndex[a.Index]
			if u == nil {
				u = &inputUnit{parent: p, name: strconv.Itoa(a.Index - lo)}
				byIndex[a.Index] = u
				in.units = append(in.units, u)
			}
			u.add(a)
		}
	}
	for i, u := range in.units {
		u.stage = strconv.Itoa(i)
	}
	return in.each(".fill-"+key, true, func(work int, u *inputUnit, parent int) error {
		return r.fillUnit(ctx, in, work, u, parent)
	})
}

// mkdir makes folder rel below the root, which may exist (a step filled
// again in the same scratch folder) but must be a folder, not a link; and
// records it for remove if record.
func (in *inputDir) mkdir(rel string, record bool) error {
	parent, err := in.openBeneath(in.root, filepath.Dir(rel), dirFlags, 0)
	if err != nil {
		return in.placeErr(err)
	}
	defer unix.Close(parent)
	name := filepath.Base(rel)
	if err := unix.Mkdirat(parent, name, 0o755); err != nil && err != unix.EEXIST {
		return &fs.PathError{Op: "mkdir", Path: filepath.Join(in.scratch, rel), Err: err}
	}
	// Made or already there, it is checked: a link in its place is not
	// a folder of baton's.
	fd, err := openDir(parent, name)
	if err != nil {
		return in.placeErr(&fs.PathError{Op: "open", Path: rel, Err: errors.Unwrap(err)})
	}
	unix.Close(fd)
	if record {
		in.dirs = append(in.dirs, rel)
	}
	return nil
}

// placeErr names the full path of err, a path error below the root, and
// marks the errors of a link or a file in the place of a folder.
func (in *inputDir) placeErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok && !filepath.IsAbs(pe.Path) {
		err = &fs.PathError{Op: pe.Op, Path: filepath.Join(in.scratch, pe.Path), Err: pe.Err}
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%w: %w", errLinkInPlace, err)
	}
	return err
}

// fillUnit makes unit u in the staging folder work and moves it into its
// parent folder.
func (r *runner) fillUnit(ctx context.Context, in *inputDir, work int, u *inputUnit, parent int) error {
	fail := func(name string, err error) error {
		rel, _ := filepath.Rel(in.rel, filepath.Join(u.parent, u.name, name))
		return fmt.Errorf("input %s: %w", filepath.ToSlash(rel), err)
	}
	if err := unix.Mkdirat(work, u.stage, 0o755); err != nil {
		return fail("", err)
	}
	for _, d := range u.subdirs {
		if err := in.mkdirBeneath(work, u.stage+"/"+d); err != nil {
			return fail(d, err)
		}
	}
	for _, f := range u.files {
		// The staging folder is in in/, where tasks can write: a name
		// with folders in it is resolved refusing links too.
		fd, err := in.openBeneath(work, u.stage+"/"+f.name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o444)
		if err != nil {
			return fail(f.name, err)
		}
		_, err = r.e.blobs.CopyTo(ctx, f.digest, fdWriter(fd))
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(f.name, err)
		}
	}
	if err := unix.Renameat(work, u.stage, parent, u.name); err != nil {
		return fail("", err)
	}
	u.placed = true
	return nil
}

// each runs fn on every unit from inputWorkers goroutines, each with a
// folder of its own named prefix-RANDOM in in/ (open as work) and the
// unit's parent folder (open). It stops at the first error, which it
// returns. A unit whose parent cannot be opened (a link in its place)
// fails the whole if strict, else is skipped. The goroutines' folders are
// removed after, when empty.
func (in *inputDir) each(prefix string, strict bool, fn func(work int, u *inputUnit, parent int) error) error {
	if len(in.units) == 0 {
		return nil
	}
	parents := map[string]int{}
	defer func() {
		for _, fd := range parents {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for _, u := range in.units {
		if _, ok := parents[u.parent]; ok {
			continue
		}
		fd, err := in.openBeneath(in.root, u.parent, dirFlags, 0)
		if err != nil && strict {
			return in.placeErr(err)
		}
		parents[u.parent] = fd
	}
	top, err := in.openBeneath(in.root, "in", dirFlags, 0)
	if err != nil {
		return in.placeErr(err)
	}
	defer unix.Close(top)
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
		errs   = make([]error, min(inputWorkers, len(in.units)))
	)
	for w := range errs {
		wg.Go(func() {
			name, work, err := mkdirTempAt(top, prefix+"-")
			if err != nil {
				errs[w] = in.placeErr(err)
				failed.Store(true)
				return
			}
			defer unix.Unlinkat(top, name, unix.AT_REMOVEDIR)
			defer unix.Close(work)
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(in.units) {
					return
				}
				u := in.units[i]
				parent := parents[u.parent]
				if parent < 0 {
					continue
				}
				if err := fn(work, u, parent); err != nil {
					errs[w] = err
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// remove deletes what fillInputs made, once: every unit it placed, moved
// into a drop folder and removed there, then the folders it made in
// place. Whatever a task added is left for the caller's RemoveAll of the
// run's scratch folder, as is a folder a task replaced with a link (which
// is never followed).
func (in *inputDir) remove() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.removed {
		return
	}
	in.removed = true
	if !in.rooted {
		return
	}
	defer func() {
		unix.Close(in.root)
		in.rooted = false
	}()
	in.each(".drop-"+filepath.Base(in.rel), false, func(drop int, u *inputUnit, parent int) error {
		if !u.placed {
			return nil
		}
		if unix.Renameat(parent, u.name, drop, u.stage) != nil {
			return nil // a task moved or removed it
		}
		if len(u.subdirs) == 0 {
			if fd, err := openDir(drop, u.stage); err == nil {
				for _, f := range u.files {
					unix.Unlinkat(fd, f.name, 0)
				}
				unix.Close(fd)
				if unix.Unlinkat(drop, u.stage, unix.AT_REMOVEDIR) == nil {
					return nil
				}
			}
		}
		// Nested folders, something a task added, or not a folder any
		// more.
		removeAllAt(drop, u.stage)
		return nil
	})
	for i := len(in.dirs) - 1; i >= 0; i-- {
		if parent, err := in.openBeneath(in.root, filepath.Dir(in.dirs[i]), dirFlags, 0); err == nil {
			unix.Unlinkat(parent, filepath.Base(in.dirs[i]), unix.AT_REMOVEDIR)
			unix.Close(parent)
		}
	}
	in.units, in.dirs = nil, nil
}

// openBeneath opens rel, a slash-separated path below folder dir, with
// flags and mode, following no link on the way and not the last name
// either (ELOOP, or ENOTDIR when a folder is asked for). openat2 does
// that in one call; without it each folder on the way is opened in turn.
func (in *inputDir) openBeneath(dir int, rel string, flags int, mode uint32) (int, error) {
	if !in.noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags | unix.O_NOFOLLOW), Mode: uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		for try := 0; ; try++ {
			fd, err := unix.Openat2(dir, rel, &how)
			switch {
			case err == nil:
				return fd, nil
			case err == unix.EINTR || (err == unix.EAGAIN && try < 3):
				continue
			case err == unix.ENOSYS || err == unix.EPERM:
				in.noOpenat2.Store(true)
			case err != unix.EAGAIN:
				return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
			}
			break
		}
	}
	return walkBeneath(dir, rel, flags, mode)
}

// walkBeneath is openBeneath one name at a time.
func walkBeneath(dir int, rel string, flags int, mode uint32) (int, error) {
	at, owned := dir, false
	defer func() {
		if owned {
			unix.Close(at)
		}
	}()
	names := strings.Split(rel, "/")
	for i, name := range names {
		if name == ".." || name == "" { // "" also when rel is absolute
			return -1, &fs.PathError{Op: "open", Path: rel, Err: unix.EXDEV}
		}
		f, m := dirFlags, uint32(0)
		if i == len(names)-1 {
			f, m = flags|unix.O_NOFOLLOW, mode
		}
		var fd int
		var err error
		for {
			if fd, err = unix.Openat(at, name, f, m); err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
		if owned {
			unix.Close(at)
		}
		at, owned = fd, true
	}
	owned = false
	return at, nil
}

// mkdirBeneath makes folder rel below folder dir, following no link.
func (in *inputDir) mkdirBeneath(dir int, rel string) error {
	parent, err := in.openBeneath(dir, filepath.Dir(rel), dirFlags, 0)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if err := unix.Mkdirat(parent, filepath.Base(rel), 0o755); err != nil {
		return &fs.PathError{Op: "mkdir", Path: rel, Err: err}
	}
	return nil
}

// mkdirTempAt makes and opens a folder of folder dir named prefix and a
// random suffix, so a task of the run cannot have a link waiting under
// its name; it is opened refusing a link all the same.
func mkdirTempAt(dir int, prefix string) (string, int, error) {
	for range 100 {
		name := prefix + strconv.FormatUint(rand.Uint64(), 36)
		err := unix.Mkdirat(dir, name, 0o700)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return "", -1, &fs.PathError{Op: "mkdir", Path: name, Err: err}
		}
		fd, err := openDir(dir, name)
		if err != nil {
			return "", -1, err
		}
		return name, fd, nil
	}
	return "", -1, &fs.PathError{Op: "mkdir", Path: prefix + "*", Err: unix.EEXIST}
}

// fdWriter writes to a file descriptor: os.NewFile would register the
// file with the runtime's poller, which costs more than writing a small
// input.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}
