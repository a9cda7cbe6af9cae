package feature

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoClientDeps keeps package feature free of the clients its
// neighbours hold (online: Redis; ingest: NATS, Kafka; parquet: Parquet),
// so that what imports features does not link them.
func TestNoClientDeps(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to list the package's dependencies: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/redis/go-redis",
		"github.com/nats-io/",
		"github.com/twmb/franz-go",
		"github.com/parquet-go/",
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("package feature depends on %s: move the code that needs it to online, ingest or parquet", dep)
			}
		}
	}
}
