package main_test

import (
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/testwait"
)

// proxy forwards TCP to PostgreSQL and can cut every connection, to play
// a database that goes away and comes back.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() { io.Copy(c, s); c.Close() }()
	}
}

// cut closes every connection; setDown keeps refusing new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *proxy) setDown(d bool) {
	p.mu.Lock()
	p.down = d
	p.mu.Unlock()
	if d {
		p.cut()
	}
}

// TestPostgresOutage runs a flow on PostgreSQL and takes the database away
// for a few seconds mid-run: baton retries with backoff and the run
// finishes, every task completed once.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	u, _ := url.Parse(dsn)
	p := newProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	home, dir := t.TempDir(), t.TempDir()
	f := writeFile(t, dir, "outage.yaml", `name: outage
steps:
  - name: each
    foreach: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    run: sleep 0.4; echo "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/x"
  - name: join
    needs: [each]
    run: ls "$BATON_INPUT_DIR/each" | wc -l | tr -d ' ' > "$BATON_OUTPUT_DIR/n"
`)
	cmd := exec.Command(bin, "run", f, "--no-progress")
	cmd.Env = append(os.Environ(), "BATON_HOME="+home, "BATON_DB="+u.String())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	direct := append(os.Environ(), "BATON_HOME="+home, "BATON_DB="+dsn)
	// Cut the database once the run is under way. Each check runs `baton
	// show`: every 50 ms is often enough.
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		t.Logf("baton run:\n%s", out.String())
	}
	testwait.UntilEvery(failFirst{t, stop}, 60*time.Second, 50*time.Millisecond, func() (bool, string) {
		show := exec.Command(bin, "show", "1", "-o", "json")
		show.Env = direct
		js, _ := show.Output()
		return strings.Count(string(js), `"status": "succeeded"`) >= 2, string(js)
	}, "two tasks of the run to succeed")
	cutAt := time.Now()
	p.setDown(true)
	// The outage's length is the scenario, not a wait for something:
	// baton must ride out seconds without its database.
	time.Sleep(4 * time.Second)
	p.setDown(false)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("baton run through an outage: %v\n%s", err, out.String())
	}
	if time.Since(cutAt) < 4*time.Second {
		t.Fatalf("the run ended %s after the cut: before the outage was over, so it tested nothing", time.Since(cutAt))
	}
	if !strings.Contains(out.String(), "succeeded") {
		t.Fatalf("output: %s", out.String())
	}
	get := exec.Command(bin, "artifact", "get", "1/join/n")
	get.Env = direct
	n, err := get.Output()
	if err != nil || strings.TrimSpace(string(n)) != "16" {
		t.Fatalf("join saw %q (%v)", n, err)
	}
	show := exec.Command(bin, "show", "1", "-o", "json")
	show.Env = direct
	js, _ := show.Output()
	if strings.Count(string(js), `"status": "succeeded"`) < 18 {
		t.Fatalf("show: %s", js)
	}
}
