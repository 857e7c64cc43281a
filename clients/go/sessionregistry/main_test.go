// Shared test fixtures: real daemons as child processes, clients, fresh
// tables, and bounded waits. One daemon with the default flags serves most
// tests; those that need other flags (small watch bounds, tiny limits,
// tokens, a memory budget, an unreachable etcd) share one daemon per set of
// flags, started on first use. Every daemon is one node process, on port 0
// and without its HTTP listener, stopped when the tests end. Every test
// works in tables of its own. Nothing here asserts how long anything took:
// waits poll for a condition, bounded by a generous limit.

package sessionregistry_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/session-registry/session-registry/clients/go/sessionregistry"
)

// wait bounds anything the daemon does on its own (expiry, events, a
// restart): tests wait for the condition, never for a fixed time.
const wait = 30 * time.Second

// root is the repository's root, where the daemon's sources are.
var root string

var listening = regexp.MustCompile(`listening on (\S+:\d+)`)

// daemon is `node --conditions=source --import tsx src/daemon/main.ts` on
// 127.0.0.1:0 without its HTTP listener (whose default port would collide
// between daemons), with extra flags.
type daemon struct {
	cmd    *exec.Cmd
	addr   string
	stderr *os.File
	exited chan struct{}
}

func startDaemon(flags ...string) (*daemon, error) {
	args := append([]string{
		"--conditions=source", "--import", "tsx", "src/daemon/main.ts",
		"--listen", "127.0.0.1:0", "--http-listen", "off", "--log-level", "warn",
	}, flags...)
	cmd := exec.Command("node", args...)
	cmd.Dir = root
	stderr, err := os.CreateTemp("", "sr-go-daemon-*.log")
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, stderr: stderr, exited: make(chan struct{})}
	// The daemon's one stdout line says where it listens; "" if it died.
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	m := listening.FindStringSubmatch(line)
	if m == nil {
		d.stop()
		log, _ := os.ReadFile(stderr.Name())
		return nil, fmt.Errorf("the daemon did not start: %q %s", line, log)
	}
	d.addr = m[1]
	return d, nil
}

// terminate sends SIGTERM; the daemon then shuts down gracefully.
func (d *daemon) terminate() { _ = d.cmd.Process.Signal(syscall.SIGTERM) }

// stop sends SIGTERM and waits, or kills after the bound.
func (d *daemon) stop() {
	d.terminate()
	select {
	case <-d.exited:
	case <-time.After(wait):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.stderr.Close()
	os.Remove(d.stderr.Name())
}

// atExit runs when the tests end, after the daemons stop.
var atExit []func()

var (
	daemonsMu sync.Mutex
	daemons   = map[string]*daemon{}
)

// shared is the daemon of one set of flags, started on first use and
// stopped by TestMain.
func shared(t testing.TB, flags ...string) *daemon {
	t.Helper()
	key := fmt.Sprint(flags)
	daemonsMu.Lock()
	defer daemonsMu.Unlock()
	if d, ok := daemons[key]; ok {
		return d
	}
	d, err := startDaemon(flags...)
	if err != nil {
		t.Fatal(err)
	}
	daemons[key] = d
	return d
}

// The daemons of several tests.
func defaultDaemon(t testing.TB) string { return shared(t).addr }

// bounded lets a watcher fall 4 live messages behind and keeps 100 events per table.
func bounded(t testing.TB) string {
	return shared(t, "--watch-queue", "4", "--watch-history", "100").addr
}

// tiny holds 2 tables (default is one) and 1 open watch.
func tiny(t testing.TB) string { return shared(t, "--max-tables", "2", "--max-watchers", "1").addr }

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err == nil {
		// The test runs in the package's directory, maybe through a GOPATH link.
		wd, err = filepath.EvalSymlinks(wd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root = filepath.Join(wd, "..", "..", "..")
	if _, err := os.Stat(filepath.Join(root, "src", "daemon", "main.ts")); err != nil {
		fmt.Fprintln(os.Stderr, "not in the session-registry repository:", err)
		os.Exit(1)
	}
	code := m.Run()
	for _, d := range daemons {
		d.stop()
	}
	for _, f := range atExit {
		f()
	}
	os.Exit(code)
}

// unique is a name no other test uses.
func unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// newClient is a client of addr with a 10 s deadline, closed after the test.
func newClient(t testing.TB, addr string, opts ...sessionregistry.Option) *sessionregistry.Client {
	t.Helper()
	c, err := sessionregistry.New(addr, append([]sessionregistry.Option{sessionregistry.WithTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newTable makes a fresh table, deleted after the test.
func newTable(t testing.TB, c *sessionregistry.Client, maxSessions uint32) string {
	t.Helper()
	name := unique("go")
	if _, _, err := c.CreateTable(context.Background(), name, maxSessions); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteTable(context.Background(), name, true) })
	return name
}

// must(v, err)(t) is v, failing the test on err.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// must2 is must for calls that return two values and an error.
func must2[A, B any](a A, b B, err error) func(testing.TB) (A, B) {
	return func(t testing.TB) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

// as returns err as a *T (errors.As), failing the test if it is none.
func as[T error](t testing.TB, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("got %T (%v), want %T", err, err, target)
	}
	return target
}

// protoEqual compares two messages field by field.
func protoEqual(a, b proto.Message) bool { return proto.Equal(a, b) }

// eventually polls check until it holds; fails after the bound.
func eventually(t testing.TB, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextResult is what one Next returned.
type nextResult[I any] struct {
	item I
	err  error
}

// nextAsync calls next (a stream's Next) on a goroutine of its own; its
// result comes on the channel.
func nextAsync[I any](next func() (I, error)) <-chan nextResult[I] {
	ch := make(chan nextResult[I], 1)
	go func() {
		item, err := next()
		ch <- nextResult[I]{item, err}
	}()
	return ch
}

// within is a stream's next, failing the test (and closing the stream) if
// it blocks past the bound.
func within[I any](t testing.TB, next func() (I, error), close func()) (I, error) {
	t.Helper()
	select {
	case r := <-nextAsync(next):
		return r.item, r.err
	case <-time.After(wait):
		close()
		t.Fatal("timed out waiting for the next item")
		var none I
		return none, nil
	}
}

// withinOK is within, failing the test on an error.
func withinOK[I any](t testing.TB, next func() (I, error), close func()) I {
	t.Helper()
	item, err := within(t, next, close)
	if err != nil {
		t.Fatalf("the stream ended: %v", err)
	}
	return item
}

// endsOnClose checks that close, called while next waits, ends the stream
// cleanly: next returns io.EOF.
func endsOnClose[I any](t testing.TB, next func() (I, error), close func()) {
	t.Helper()
	done := nextAsync(next)
	close()
	select {
	case r := <-done:
		if r.err != io.EOF {
			t.Fatalf("after Close: %v", r.err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not end the stream")
	}
}

// getsInAfter takes the first item of a resuming stream (its Next and
// LastError) opened while the daemon's one watcher slot is held: it checks
// that the stream meets the limit, then that it gets in once release frees
// the slot.
func getsInAfter[I any](t testing.TB, next func() (I, error), lastError func() error, release func()) I {
	t.Helper()
	done := nextAsync(next)
	eventually(t, "the stream to meet the watcher limit", func() bool { return lastError() != nil })
	release()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("the stream ended: %v", r.err)
		}
		return r.item
	case <-time.After(wait):
		t.Fatal("the stream never got in")
	}
	var none I
	return none
}

// next is w.Next within the bound.
func next(t testing.TB, w *sessionregistry.WatchStream) (*sessionregistry.WatchItem, error) {
	t.Helper()
	return within(t, w.Next, w.Close)
}

// nextItem is next, failing the test on an error.
func nextItem(t testing.TB, w *sessionregistry.WatchStream) *sessionregistry.WatchItem {
	t.Helper()
	return withinOK(t, w.Next, w.Close)
}

// ending reads w until it ends and returns the items and the error that ended it.
func ending(t testing.TB, w *sessionregistry.WatchStream) ([]*sessionregistry.WatchItem, error) {
	t.Helper()
	var items []*sessionregistry.WatchItem
	for {
		item, err := next(t, w)
		if err != nil {
			return items, err
		}
		items = append(items, item)
	}
}
