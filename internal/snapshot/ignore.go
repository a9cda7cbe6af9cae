package snapshot

import (
	"fmt"
	"path"
	"strings"
)

// IgnoreFile is the file in a flow's folder whose patterns leave paths out
// of the folder's snapshot.
const IgnoreFile = ".batonignore"

// DefaultIgnore is what every snapshot leaves out before the folder's own
// patterns apply (which may take any back with !PATTERN): version control
// and the default baton home, which holds the artifacts themselves.
var DefaultIgnore = []string{".git/", ".hg/", ".svn/", ".baton/"}

// Ignore decides which paths of a folder a snapshot leaves out, with the
// patterns of a .gitignore file at the folder's root:
//
//   - blank lines and lines starting with # are skipped;
//   - NAME or a glob (*.pyc, data-?.csv) matches that name at any depth;
//   - a pattern with a slash other than a trailing one (/build, docs/*.md)
//     matches from the folder's root only;
//   - a trailing slash (cache/) matches folders only;
//   - ** matches any number of folders (**/tmp, logs/**, a/**/b);
//   - !PATTERN takes back what an earlier pattern left out; the last
//     matching pattern wins, and nothing inside a folder left out is packed.
//
// Unlike git, only the root's ignore file is read.
type Ignore struct {
	rules []rule
}

type rule struct {
	neg, dirOnly bool
	segs         []string // path segments; "**" matches any number of them
	text         string
}

// ParseIgnore reads the patterns of an ignore file, after DefaultIgnore.
// file names the file in errors.
func ParseIgnore(file, text string) (*Ignore, error) {
	ig := &Ignore{}
	for _, p := range DefaultIgnore {
		if err := ig.add(p); err != nil {
			panic(err) // the defaults are valid
		}
	}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := ig.add(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
		}
	}
	return ig, nil
}

func (ig *Ignore) add(p string) error {
	r := rule{text: p}
	if strings.HasPrefix(p, "!") {
		r.neg, p = true, p[1:]
	}
	if strings.HasPrefix(p, `\`) { // \# and \! stand for themselves
		p = p[1:]
	}
	if strings.HasSuffix(p, "/") {
		r.dirOnly, p = true, strings.TrimRight(p, "/")
	}
	anchored := strings.Contains(p, "/")
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return fmt.Errorf("pattern %q matches nothing", r.text)
	}
	r.segs = strings.Split(p, "/")
	for _, s := range r.segs {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("pattern %q: empty, . or .. path segment", r.text)
		}
		if _, err := path.Match(s, ""); err != nil {
			return fmt.Errorf("pattern %q: %w", r.text, err)
		}
	}
	if !anchored {
		r.segs = append([]string{"**"}, r.segs...)
	}
	ig.rules = append(ig.rules, r)
	return nil
}

// Match reports whether rel (slash-separated, relative to the folder) is
// left out; dir says it is a folder.
func (ig *Ignore) Match(rel string, dir bool) bool {
	segs := strings.Split(rel, "/")
	out := false
	for _, r := range ig.rules {
		if r.dirOnly && !dir {
			continue
		}
		if matchSegs(r.segs, segs) {
			out = !r.neg
		}
	}
	return out
}

// matchSegs matches path segments against pattern segments, ** standing
// for any number (zero included) of segments, except that a trailing **
// (logs/**) matches what is inside, not the folder itself.
func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			pat = pat[1:]
			if len(pat) == 0 {
				return len(name) > 0
			}
			for i := range len(name) + 1 {
				if matchSegs(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
