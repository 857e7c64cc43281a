// WatchTables against the real daemon: the snapshot, each change as the
// whole list with what it changed, a restricted token's view, resuming
// across a real connection loss with a snapshot diffed against what was
// held, the watcher limit waited out, and the ways a tables watch ends.
// Other tests' tables may come and go on a shared daemon: assertions look
// at the tables a test made.

package sessionregistry_test

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/session-registry/session-registry/clients/go/sessionregistry"
)

func watchTables(t testing.TB, c *sessionregistry.Client, o sessionregistry.TablesWatchOptions) *sessionregistry.TablesWatchStream {
	w := c.WatchTables(ctx, o)
	t.Cleanup(w.Close)
	return w
}

// nextUpdate is w.Next within the bound, failing the test on an error.
func nextUpdate(t testing.TB, w *sessionregistry.TablesWatchStream) *sessionregistry.TablesUpdate {
	t.Helper()
	return withinOK(t, w.Next, w.Close)
}

// mine is the part of u about tables: "name:count" for each changed, "-name"
// for each deleted, and, with the tables of the list, "=name:count,..." for
// the list (in its order), each among tables only.
func mine(u *sessionregistry.TablesUpdate, tables ...string) []string {
	var out, list []string
	for _, t := range u.Changed {
		if contains(tables, t.GetName()) {
			out = append(out, fmt.Sprintf("%s:%d", t.GetName(), t.GetSessionCount()))
		}
	}
	for _, name := range u.Deleted {
		if contains(tables, name) {
			out = append(out, "-"+name)
		}
	}
	for _, t := range u.Tables {
		if contains(tables, t.GetName()) {
			list = append(list, fmt.Sprintf("%s:%d", t.GetName(), t.GetSessionCount()))
		}
	}
	return append(out, fmt.Sprint("=", list))
}

// nextAbout is the next update that changed or deleted one of tables.
func nextAbout(t testing.TB, w *sessionregistry.TablesWatchStream, tables ...string) *sessionregistry.TablesUpdate {
	t.Helper()
	for {
		u := nextUpdate(t, w)
		if len(mine(u, tables...)) > 1 {
			return u
		}
	}
}

// names are the names of tables, in their order.
func names(u *sessionregistry.TablesUpdate) []string {
	var out []string
	for _, t := range u.Tables {
		out = append(out, t.GetName())
	}
	return out
}

func TestWatchTablesGivesASnapshotThenEachChangeInOrder(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	// Enough tables that an unsorted list would show: a map of this many
	// iterates in an order of its own.
	held := make([]string, 12)
	for i := range held {
		held[i] = newTable(t, c, 10)
	}
	sort.Strings(held)
	w := watchTables(t, c, sessionregistry.TablesWatchOptions{})
	snap := nextUpdate(t, w)
	if !snap.Snapshot || len(snap.Deleted) != 0 || !reflect.DeepEqual(snap.Changed, snap.Tables) ||
		!sort.StringsAreSorted(names(snap)) || !contains(names(snap), "default") {
		t.Fatalf("snapshot: tables %v, changed %d, deleted %v, snapshot %v", names(snap), len(snap.Changed), snap.Deleted, snap.Snapshot)
	}
	var heldList []string
	for _, name := range held {
		heldList = append(heldList, name+":0")
	}
	if got, want := mine(snap, held...), append(heldList, fmt.Sprint("=", heldList)); !reflect.DeepEqual(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}

	created := unique("go")
	t.Cleanup(func() { _ = c.DeleteTable(ctx, created, true) })
	steps := []struct {
		do    func() error
		count int // created's session count after the step; -1: deleted
	}{
		{func() error { _, _, err := c.CreateTable(ctx, created, 5); return err }, 0},
		{func() error {
			_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: created, ID: "s", ProjectPath: "/s"})
			return err
		}, 1},
		{func() error {
			_, err := c.Remove(ctx, sessionregistry.RemoveInput{Table: created, ID: "s"})
			return err
		}, 0},
		{func() error { return c.DeleteTable(ctx, created, false) }, -1},
	}
	for i, step := range steps {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		change, list := "-"+created, append([]string(nil), heldList...)
		if step.count >= 0 {
			change = fmt.Sprintf("%s:%d", created, step.count)
			list = append(list, change)
		}
		sort.Strings(list)
		want := []string{change, fmt.Sprint("=", list)}
		ours := append([]string{created}, held...)
		u := nextAbout(t, w, ours...)
		if got := mine(u, ours...); u.Snapshot || !reflect.DeepEqual(got, want) || !sort.StringsAreSorted(names(u)) {
			t.Fatalf("step %d: %v (snapshot %v), want %v", i, got, u.Snapshot, want)
		}
	}
	if w.LastError() != nil {
		t.Fatalf("last error %v", w.LastError())
	}
}

func TestARestrictedTokenWatchesOnlyItsTables(t *testing.T) {
	addr := authDaemon(t)
	admin := newClient(t, addr, sessionregistry.WithToken(adminToken))
	if _, _, err := admin.CreateTable(ctx, authTable, 10); err != nil {
		t.Fatal(err)
	}
	hidden := newTable(t, admin, 10)
	w := watchTables(t, newClient(t, addr, sessionregistry.WithToken(writeToken)), sessionregistry.TablesWatchOptions{})
	if snap := nextUpdate(t, w); !reflect.DeepEqual(names(snap), []string{"default", authTable}) {
		t.Fatalf("snapshot %v", names(snap))
	}
	// A change to a hidden table, then one to a visible table: the next update is the second alone.
	register(t, admin, sessionregistry.RegisterInput{Table: hidden, ProjectPath: "/hidden"})
	s := register(t, admin, sessionregistry.RegisterInput{Table: authTable, ProjectPath: "/tables/visible"})
	t.Cleanup(func() { _, _ = admin.Remove(ctx, sessionregistry.RemoveInput{Table: authTable, ID: s.GetId()}) })
	u := nextUpdate(t, w)
	if len(u.Changed) != 1 || u.Changed[0].GetName() != authTable || !reflect.DeepEqual(names(u), []string{"default", authTable}) {
		t.Fatalf("update: tables %v, changed %v", names(u), u.Changed)
	}
}

func TestWatchTablesAutoResumeDiffsTheNewSnapshotAgainstWhatWasHeld(t *testing.T) {
	addr := defaultDaemon(t)
	c := newClient(t, addr)
	gone, kept := newTable(t, c, 10), newTable(t, c, 10)
	p := newProxy(t, addr)
	w := watchTables(t, newClient(t, p.addr(), sessionregistry.WithDialOptions(fastReconnect)),
		sessionregistry.TablesWatchOptions{AutoResume: true, Backoff: fast})
	if got := mine(nextUpdate(t, w), gone, kept); len(got) != 3 {
		t.Fatalf("snapshot %v", got)
	}
	// While the watcher cannot reach the daemon, one table goes, one comes and one changes.
	p.block()
	if err := c.DeleteTable(ctx, gone, false); err != nil {
		t.Fatal(err)
	}
	made := newTable(t, c, 10)
	register(t, c, sessionregistry.RegisterInput{Table: kept, ProjectPath: "/kept"})
	p.unblock()
	u := nextAbout(t, w, gone, kept, made)
	list := []string{kept + ":1", made + ":0"}
	sort.Strings(list)
	// On the new snapshot every table is changed; what went meanwhile is deleted.
	want := append(append([]string(nil), list...), "-"+gone, fmt.Sprint("=", list))
	if got := mine(u, gone, kept, made); !u.Snapshot || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(u.Changed, u.Tables) {
		t.Fatalf("after the reconnect %v (snapshot %v), want %v", got, u.Snapshot, want)
	}
	if e := as[*sessionregistry.Error](t, w.LastError()); e.Code != codes.Unavailable {
		t.Fatalf("recovered from %v", e)
	}
	if connections, cuts := p.stats(); cuts != 1 || connections < 2 {
		t.Fatalf("%d connections, %d cuts", connections, cuts)
	}
}

func TestWatchTablesWithoutAutoResumeEndsOnAConnectionLoss(t *testing.T) {
	p := newProxy(t, defaultDaemon(t))
	w := watchTables(t, newClient(t, p.addr()), sessionregistry.TablesWatchOptions{})
	nextUpdate(t, w)
	p.cut()
	_, err := within(t, w.Next, w.Close)
	if e := as[*sessionregistry.Error](t, err); e.Code != codes.Unavailable || e.Reason != "" {
		t.Fatalf("got %v", err)
	}
	if _, again := w.Next(); again != err {
		t.Fatalf("after the end: %v", again)
	}
}

func TestWatchTablesAutoResumeWaitsOutTheWatcherLimitAndEndsOnOtherErrors(t *testing.T) {
	c := newClient(t, tiny(t))
	// The one watcher slot: a tables watch holds it until its Close cancels the call.
	first := watchTables(t, c, sessionregistry.TablesWatchOptions{})
	nextUpdate(t, first)
	_, err := within(t, c.WatchTables(ctx, sessionregistry.TablesWatchOptions{}).Next, func() {})
	as[*sessionregistry.WatcherLimitReachedError](t, err)

	waiting := watchTables(t, c, sessionregistry.TablesWatchOptions{AutoResume: true, Backoff: fast})
	if u := getsInAfter(t, waiting.Next, waiting.LastError, first.Close); !u.Snapshot {
		t.Fatalf("got %+v", u)
	}
	as[*sessionregistry.WatcherLimitReachedError](t, waiting.LastError())

	// A refusal that no reconnect can change ends it even with AutoResume.
	stranger := newClient(t, authDaemon(t), sessionregistry.WithToken("no-such-token-0000000000"))
	_, err = within(t, watchTables(t, stranger, sessionregistry.TablesWatchOptions{AutoResume: true, Backoff: fast}).Next, func() {})
	as[*sessionregistry.UnauthenticatedError](t, err)
}

func TestCloseAndTheClientsCloseEndATablesWatchCleanly(t *testing.T) {
	addr := defaultDaemon(t)
	c := newClient(t, addr)
	w := watchTables(t, c, sessionregistry.TablesWatchOptions{})
	nextUpdate(t, w)
	endsOnClose(t, w.Next, w.Close)

	// Closing the client ends its tables watches cleanly, resuming or not.
	other := newClient(t, addr)
	plain := other.WatchTables(ctx, sessionregistry.TablesWatchOptions{})
	resuming := other.WatchTables(ctx, sessionregistry.TablesWatchOptions{AutoResume: true})
	nextUpdate(t, plain)
	nextUpdate(t, resuming)
	other.Close()
	for _, w := range []*sessionregistry.TablesWatchStream{plain, resuming} {
		if _, err := within(t, w.Next, w.Close); err != io.EOF {
			t.Fatalf("after the client closed: %v", err)
		}
	}
}
