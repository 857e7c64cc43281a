// Watch against the real daemon: the snapshot, events in revision order,
// replay from a revision, resuming across a real connection loss, resyncs
// after compaction and after the table's history started over, a consumer
// too slow for the daemon, and the ways a watch ends.

package sessionregistry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"

	pb "github.com/session-registry/session-registry/clients/go/gen/sessionregistry/v1"
	"github.com/session-registry/session-registry/clients/go/sessionregistry"
)

// fast is the reconnect pause of the tests' watches.
var fast = sessionregistry.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}

// fastReconnect makes gRPC dial again at once after a broken connection,
// rather than after its default backoff (1 s and up).
var fastReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 100 * time.Millisecond},
	MinConnectTimeout: 20 * time.Second,
})

// startSpy records the start revision of every Watch call the client makes; it changes nothing.
type startSpy struct {
	mu     sync.Mutex
	starts []uint64
}

func (s *startSpy) option() grpc.DialOption {
	return grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return spyStream{cs, s}, nil
	})
}

func (s *startSpy) get() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.starts...)
}

type spyStream struct {
	grpc.ClientStream
	spy *startSpy
}

func (s spyStream) SendMsg(m interface{}) error {
	if r, ok := m.(*pb.WatchRequest); ok {
		s.spy.mu.Lock()
		s.spy.starts = append(s.spy.starts, r.GetStartRevision())
		s.spy.mu.Unlock()
	}
	return s.ClientStream.SendMsg(m)
}

func watch(t testing.TB, c *sessionregistry.Client, o sessionregistry.WatchOptions) *sessionregistry.WatchStream {
	w := c.Watch(ctx, o)
	t.Cleanup(w.Close)
	return w
}

// kinds describes items as "snapshot@REV" and "TYPE:id@REV".
func kinds(items ...*sessionregistry.WatchItem) []string {
	var out []string
	for _, i := range items {
		if i.Kind == sessionregistry.KindSnapshot {
			out = append(out, fmt.Sprintf("snapshot@%d", i.Revision))
		} else {
			out = append(out, fmt.Sprintf("%s:%s@%d", i.Type, i.Session.GetId(), i.Revision))
		}
	}
	return out
}

func event(typ pb.EventType, s *pb.Session, revision uint64) string {
	return fmt.Sprintf("%s:%s@%d", typ, s.GetId(), revision)
}

func TestWatchFromZeroGivesASnapshotThenEveryEventInRevisionOrder(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	a := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "a", ProjectPath: "/a"})
	b := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "b", ProjectPath: "/b"})
	w := watch(t, c, sessionregistry.WatchOptions{Table: table})
	snap := nextItem(t, w)
	if snap.Kind != sessionregistry.KindSnapshot || snap.Revision != b.GetRevision() || snap.Resync || snap.TableUID != b.GetTableUid() ||
		len(snap.Sessions) != 2 || !protoEqual(snap.Sessions[0], a) || !protoEqual(snap.Sessions[1], b) {
		t.Fatalf("snapshot %+v", snap)
	}
	cs := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "c", ProjectPath: "/c"})
	a2 := must(c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: "a", Name: sessionregistry.Ptr("renamed")}))(t)
	must(c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: "b"}))(t)
	removedAt := must(c.GetTable(ctx, table))(t).GetRevision()
	got := []*sessionregistry.WatchItem{nextItem(t, w), nextItem(t, w), nextItem(t, w)}
	want := []string{
		event(pb.EventType_EVENT_TYPE_REGISTERED, cs, cs.GetRevision()),
		event(pb.EventType_EVENT_TYPE_UPDATED, a2, a2.GetRevision()),
		event(pb.EventType_EVENT_TYPE_REMOVED, b, removedAt),
	}
	if !reflect.DeepEqual(kinds(got...), want) {
		t.Fatalf("events %v, want %v", kinds(got...), want)
	}
	if !protoEqual(got[1].Session, a2) || !protoEqual(got[2].Session, b) { // a removed session comes in its last state
		t.Fatalf("sessions %v, %v", got[1].Session, got[2].Session)
	}
	if w.LastRevision() != removedAt || w.TableUID() != b.GetTableUid() || w.LastError() != nil {
		t.Fatalf("last revision %d, uid %q, last error %v", w.LastRevision(), w.TableUID(), w.LastError())
	}
}

func TestWatchFromNReplaysTheRetainedEventsWithoutASnapshotThenGoesLive(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	register(t, c, sessionregistry.RegisterInput{Table: table, ID: "s1", ProjectPath: "/s1"})
	s2 := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "s2", ProjectPath: "/s2"})
	s3 := must(c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: "s1", Metadata: map[string]string{"k": "v"}}))(t)
	// A List's revision + 1 is where a watch continues it exactly.
	page := must(c.ListPage(ctx, table, 0, ""))(t)
	if page.GetRevision() != s3.GetRevision() {
		t.Fatalf("page at %d, last write at %d", page.GetRevision(), s3.GetRevision())
	}
	w := watch(t, c, sessionregistry.WatchOptions{Table: table, StartRevision: s2.GetRevision(), TableUID: page.GetTableUid()})
	s4 := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "s4", ProjectPath: "/s4"})
	got := kinds(nextItem(t, w), nextItem(t, w), nextItem(t, w))
	want := []string{
		event(pb.EventType_EVENT_TYPE_REGISTERED, s2, s2.GetRevision()),
		event(pb.EventType_EVENT_TYPE_UPDATED, s3, s3.GetRevision()),
		event(pb.EventType_EVENT_TYPE_REGISTERED, s4, s4.GetRevision()),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestAutoResumeContinuesAfterARealConnectionLoss(t *testing.T) {
	addr := defaultDaemon(t)
	c := newClient(t, addr)
	table := newTable(t, c, 10)
	before := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "before", ProjectPath: "/before"})
	p := newProxy(t, addr)
	spy := &startSpy{}
	wc := newClient(t, p.addr(), sessionregistry.WithDialOptions(fastReconnect, spy.option()))
	w := watch(t, wc, sessionregistry.WatchOptions{Table: table, AutoResume: true, Backoff: fast})
	got := []*sessionregistry.WatchItem{nextItem(t, w)}
	var made []*pb.Session
	for i := 0; i < 6; i++ {
		made = append(made, register(t, c, sessionregistry.RegisterInput{Table: table, ID: fmt.Sprint("e", i), ProjectPath: fmt.Sprint("/e", i)}))
		got = append(got, nextItem(t, w))
		if i == 2 {
			p.cut() // the consumer holds e0-e2; e3 on come after the break
		}
	}
	want := []string{fmt.Sprintf("snapshot@%d", before.GetRevision())}
	for _, s := range made {
		want = append(want, event(pb.EventType_EVENT_TYPE_REGISTERED, s, s.GetRevision()))
	}
	if !reflect.DeepEqual(kinds(got...), want) || got[0].Resync {
		t.Fatalf("got %v, want %v", kinds(got...), want)
	}
	if e := as[*sessionregistry.Error](t, w.LastError()); e.Code != codes.Unavailable {
		t.Fatalf("recovered from %v", e)
	}
	connections, cuts := p.stats()
	if cuts != 1 || connections < 2 {
		t.Fatalf("%d connections, %d cuts", connections, cuts)
	}
	// Every later call started right after the last item the first one delivered.
	starts := spy.get()
	if len(starts) < 2 || starts[0] != 0 {
		t.Fatalf("starts %v", starts)
	}
	for _, s := range starts[1:] {
		if s != made[2].GetRevision()+1 {
			t.Fatalf("starts %v, want 0 then %d", starts, made[2].GetRevision()+1)
		}
	}
}

func TestWithoutAutoResumeAConnectionLossEndsTheWatch(t *testing.T) {
	addr := defaultDaemon(t)
	c := newClient(t, addr)
	table := newTable(t, c, 10)
	p := newProxy(t, addr)
	w := watch(t, newClient(t, p.addr()), sessionregistry.WatchOptions{Table: table})
	nextItem(t, w)
	p.cut()
	_, err := next(t, w)
	if e := as[*sessionregistry.Error](t, err); e.Code != codes.Unavailable || e.Reason != "" {
		t.Fatalf("got %v", err)
	}
	if _, again := w.Next(); again != err {
		t.Fatalf("after the end: %v", again)
	}
}

// history makes 108 writes in table (register h, then 107 updates) and
// returns their revisions: more than the bounded daemon keeps (100).
func history(t testing.TB, c *sessionregistry.Client, table string) []uint64 {
	t.Helper()
	written := []uint64{register(t, c, sessionregistry.RegisterInput{Table: table, ID: "h", ProjectPath: "/h"}).GetRevision()}
	for i := 0; i < 107; i++ {
		s := must(c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: "h", Metadata: map[string]string{"n": fmt.Sprint(i)}}))(t)
		written = append(written, s.GetRevision())
	}
	return written
}

func TestAutoResumeResyncsWithASnapshotAfterRevisionCompacted(t *testing.T) {
	c := newClient(t, bounded(t))
	table := newTable(t, c, 10)
	history(t, c, table)
	w := watch(t, c, sessionregistry.WatchOptions{Table: table, StartRevision: 1, AutoResume: true, Backoff: fast})
	snap := nextItem(t, w)
	h := must(c.Lookup(ctx, table, sessionregistry.ByID("h")))(t)
	if snap.Kind != sessionregistry.KindSnapshot || !snap.Resync || len(snap.Sessions) != 1 || !protoEqual(snap.Sessions[0], h) {
		t.Fatalf("got %+v", snap)
	}
	as[*sessionregistry.RevisionCompactedError](t, w.LastError())
	s := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/next"})
	if got := kinds(nextItem(t, w)); got[0] != event(pb.EventType_EVENT_TYPE_REGISTERED, s, s.GetRevision()) {
		t.Fatalf("got %v", got)
	}
}

func TestAutoResumeResyncsWhenTheTableWasMadeAgainWhileDisconnected(t *testing.T) {
	addr := defaultDaemon(t)
	c := newClient(t, addr)
	table := newTable(t, c, 10)
	register(t, c, sessionregistry.RegisterInput{Table: table, ID: "x", ProjectPath: "/x"})
	p := newProxy(t, addr)
	spy := &startSpy{}
	w := watch(t, newClient(t, p.addr(), sessionregistry.WithDialOptions(fastReconnect, spy.option())),
		sessionregistry.WatchOptions{Table: table, AutoResume: true, Backoff: fast})
	first := nextItem(t, w)
	y := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "y", ProjectPath: "/y"})
	nextItem(t, w)
	// While the watcher cannot reach the daemon, the table's history starts over.
	p.block()
	if err := c.DeleteTable(ctx, table, true); err != nil {
		t.Fatal(err)
	}
	must2(c.CreateTable(ctx, table, 10))(t)
	z := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "z", ProjectPath: "/z"})
	p.unblock()
	snap := nextItem(t, w)
	if snap.Kind != sessionregistry.KindSnapshot || !snap.Resync || len(snap.Sessions) != 1 || !protoEqual(snap.Sessions[0], z) ||
		snap.TableUID != z.GetTableUid() || snap.TableUID == first.TableUID {
		t.Fatalf("got %+v", snap)
	}
	if e := as[*sessionregistry.TableUIDMismatchError](t, w.LastError()); e.TableUID != z.GetTableUid() {
		t.Fatalf("recovered from %+v", e)
	}
	starts := spy.get()
	if starts[0] != 0 || starts[len(starts)-1] != 0 || starts[len(starts)-2] != y.GetRevision()+1 {
		t.Fatalf("starts %v", starts)
	}
}

func TestAutoResumeResyncsFromAPositionOfAnotherHistory(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	s := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/s"})
	w := watch(t, c, sessionregistry.WatchOptions{Table: table, StartRevision: 1, TableUID: "kept-from-another-history", AutoResume: true, Backoff: fast})
	snap := nextItem(t, w)
	if !snap.Resync || len(snap.Sessions) != 1 || !protoEqual(snap.Sessions[0], s) {
		t.Fatalf("got %+v", snap)
	}
	as[*sessionregistry.TableUIDMismatchError](t, w.LastError())
	// Without AutoResume the same start is the caller's to handle.
	_, err := c.Watch(ctx, sessionregistry.WatchOptions{Table: table, StartRevision: 1, TableUID: "kept-from-another-history"}).Next()
	as[*sessionregistry.TableUIDMismatchError](t, err)
}

// stalledWatch opens a watch on the bounded daemon from a client whose
// HTTP/2 window stays at 64 KiB, takes the snapshot, then writes updates
// of 16 KB each without reading: far more than the window and the
// daemon's queue of 4 hold. It returns the watch, its table and the
// revisions written.
func stalledWatch(t testing.TB, autoResume bool, writes int) (*sessionregistry.WatchStream, string, []uint64) {
	t.Helper()
	addr := bounded(t)
	writer := newClient(t, addr)
	table := newTable(t, writer, 10)
	s := register(t, writer, sessionregistry.RegisterInput{Table: table, ID: "bp", ProjectPath: "/bp"})
	c := newClient(t, addr, sessionregistry.WithDialOptions(grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16)))
	w := watch(t, c, sessionregistry.WatchOptions{Table: table, AutoResume: autoResume, Backoff: fast})
	if snap := nextItem(t, w); len(snap.Sessions) != 1 || !protoEqual(snap.Sessions[0], s) {
		t.Fatalf("snapshot %+v", snap)
	}
	var written []uint64
	for i := 0; i < writes; i++ {
		u := must(writer.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: "bp", Metadata: bigMetadata(i, 4)}))(t)
		written = append(written, u.GetRevision())
	}
	return w, table, written
}

func TestAStalledConsumerGetsEverythingBeforeTheResumeRevision(t *testing.T) {
	w, _, written := stalledWatch(t, false, 60)
	items, err := ending(t, w)
	tooSlow := as[*sessionregistry.WatcherTooSlowError](t, err)
	if len(items) == 0 || len(items) >= len(written) || tooSlow.ResumeRevision != int64(written[len(items)]) {
		t.Fatalf("%d of %d events, then %+v", len(items), len(written), tooSlow)
	}
	for i, item := range items { // in order, with no gap
		if item.Revision != written[i] {
			t.Fatalf("event %d at %d, want %d", i, item.Revision, written[i])
		}
	}
}

func TestAutoResumeCarriesOnAfterTooSlowWithoutLossOrDuplicates(t *testing.T) {
	w, table, written := stalledWatch(t, true, 60)
	for i, want := range written {
		item := nextItem(t, w)
		if item.Kind != sessionregistry.KindEvent || item.Revision != want {
			t.Fatalf("item %d: %v, want the event at %d", i, kinds(item), want)
		}
	}
	as[*sessionregistry.WatcherTooSlowError](t, w.LastError())
	c := newClient(t, bounded(t))
	more := must(c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: "bp", Metadata: bigMetadata(60, 1)}))(t)
	if item := nextItem(t, w); item.Revision != more.GetRevision() {
		t.Fatalf("got %v, want the live event at %d", kinds(item), more.GetRevision())
	}
}

func TestDeletingTheTableEndsItsWatchesWithTableNotFound(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/held"})
	plain := watch(t, c, sessionregistry.WatchOptions{Table: table})
	resuming := watch(t, c, sessionregistry.WatchOptions{Table: table, StartRevision: 1, AutoResume: true}) // not transient: returned
	nextItem(t, plain)
	nextItem(t, resuming)
	if err := c.DeleteTable(ctx, table, true); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*sessionregistry.WatchStream{plain, resuming} {
		_, err := ending(t, w)
		if e := as[*sessionregistry.TableNotFoundError](t, err); e.Code != codes.NotFound || e.Table != table {
			t.Fatalf("got %+v", e)
		}
	}
}

func TestAutoResumeWaitsOutTheWatcherLimit(t *testing.T) {
	c := newClient(t, tiny(t))
	first := watch(t, c, sessionregistry.WatchOptions{})
	nextItem(t, first)
	waiting := watch(t, c, sessionregistry.WatchOptions{AutoResume: true, Backoff: fast})
	if item := getsInAfter(t, waiting.Next, waiting.LastError, first.Close); item.Kind != sessionregistry.KindSnapshot {
		t.Fatalf("got %+v", item)
	}
	if e := as[*sessionregistry.WatcherLimitReachedError](t, waiting.LastError()); e.Max != 1 {
		t.Fatalf("got %+v", e)
	}
}

func TestCloseAndCancelEndAWatch(t *testing.T) {
	addr := defaultDaemon(t)
	c := newClient(t, addr)
	table := newTable(t, c, 10)

	// Close from another goroutine, while Next waits: a clean end.
	w := watch(t, c, sessionregistry.WatchOptions{Table: table})
	nextItem(t, w)
	endsOnClose(t, w.Next, w.Close)

	// Closing the client ends its watches cleanly, resuming or not.
	other := newClient(t, addr)
	plain := other.Watch(ctx, sessionregistry.WatchOptions{Table: table})
	resuming := other.Watch(ctx, sessionregistry.WatchOptions{Table: table, AutoResume: true})
	nextItem(t, plain)
	nextItem(t, resuming)
	other.Close()
	for _, w := range []*sessionregistry.WatchStream{plain, resuming} {
		if _, err := next(t, w); err != io.EOF {
			t.Fatalf("after the client closed: %v", err)
		}
	}

	// Cancelling the context ends it with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancelled := c.Watch(cctx, sessionregistry.WatchOptions{Table: table, AutoResume: true})
	nextItem(t, cancelled)
	cancel()
	if _, err := next(t, cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}
