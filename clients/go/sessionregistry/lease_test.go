// ttl, expiry, KeepAlive and the keep-alive lease, and bearer tokens on
// every kind of call. Sessions here live 1 s (the shortest ttl the daemon
// allows); tests wait for what the daemon does with a generous bound and
// never assert how long anything took.

package sessionregistry_test

import (
	"sync"
	"testing"
	"time"

	pb "github.com/session-registry/session-registry/clients/go/gen/sessionregistry/v1"
	"github.com/session-registry/session-registry/clients/go/sessionregistry"
)

// stopped waits until the lease has stopped; fails after the bound.
func stopped(t testing.TB, l *sessionregistry.Lease) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(wait):
		t.Fatal("the lease never stopped")
	}
}

func TestASessionNotKeptAliveExpiresWithOneExpiredEvent(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 1)
	w := watch(t, c, sessionregistry.WatchOptions{Table: table})
	nextItem(t, w)
	s := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "e", ProjectPath: "/e", TTL: time.Second})
	if s.GetTtl().AsDuration() != time.Second || !s.GetExpireTime().AsTime().Equal(s.GetCreateTime().AsTime().Add(time.Second)) {
		t.Fatalf("registered %v", s)
	}
	_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/other"})
	as[*sessionregistry.SessionLimitReachedError](t, err)
	// Nobody calls the daemon: it expires the session on its own.
	if item := nextItem(t, w); item.Type != pb.EventType_EVENT_TYPE_REGISTERED {
		t.Fatalf("got %v", kinds(item))
	}
	expired := nextItem(t, w)
	if expired.Type != pb.EventType_EVENT_TYPE_EXPIRED || !protoEqual(expired.Session, s) || expired.Revision <= s.GetRevision() {
		t.Fatalf("got %v", kinds(expired))
	}
	_, err = c.KeepAlive(ctx, table, "e")
	as[*sessionregistry.SessionNotFoundError](t, err)
	_, err = c.Lookup(ctx, table, sessionregistry.ByProjectPath("/e"))
	as[*sessionregistry.SessionNotFoundError](t, err)
	// Its slot, id and path are free again.
	register(t, c, sessionregistry.RegisterInput{Table: table, ID: "e", ProjectPath: "/e"})
}

func TestKeepAlivePushesTheExpireTimeWithoutARevision(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	s := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/k", TTL: time.Minute})
	eventually(t, "the clock to move past the registration", func() bool {
		return time.Now().After(s.GetCreateTime().AsTime().Add(2 * time.Millisecond))
	})
	kept := must(c.KeepAlive(ctx, table, s.GetId()))(t)
	if !kept.GetExpireTime().AsTime().After(s.GetExpireTime().AsTime()) || kept.GetRevision() != s.GetRevision() {
		t.Fatalf("kept %v, registered %v", kept, s)
	}
	noTTL := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/n"})
	if got := must(c.KeepAlive(ctx, table, noTTL.GetId()))(t); !protoEqual(got, noTTL) {
		t.Fatalf("a session without ttl came back as %v", got)
	}
}

func TestALeaseKeepsItsSessionPastItsTTLUntilRemoved(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	var mu sync.Mutex
	var renewed []*pb.Session
	lease := must(c.RegisterWithKeepAlive(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/lease", TTL: time.Second},
		sessionregistry.LeaseOptions{
			Interval:  200 * time.Millisecond,
			OnRenewed: func(s *pb.Session) { mu.Lock(); renewed = append(renewed, s); mu.Unlock() },
			OnLost:    func(err error) { t.Errorf("lost: %v", err) },
		}))(t)
	first := lease.Session()
	// Six renewals 200 ms apart span more than the ttl: only they kept it.
	eventually(t, "six renewals", func() bool { return lease.Renewals() >= 6 })
	now := must(c.Lookup(ctx, table, sessionregistry.ByID(lease.ID())))(t)
	if !now.GetExpireTime().AsTime().After(first.GetExpireTime().AsTime()) || now.GetRevision() != first.GetRevision() {
		t.Fatalf("now %v, registered %v", now, first)
	}
	mu.Lock()
	if len(renewed) < 6 || renewed[0].GetId() != first.GetId() {
		t.Fatalf("renewed %v", renewed)
	}
	mu.Unlock()
	removed := must(lease.Remove(ctx))(t)
	if removed.GetId() != first.GetId() {
		t.Fatalf("removed %v", removed)
	}
	stopped(t, lease)
	if lease.Err() != nil {
		t.Fatalf("a removed lease reports %v", lease.Err())
	}
	_, err := c.Lookup(ctx, table, sessionregistry.ByID(first.GetId()))
	as[*sessionregistry.SessionNotFoundError](t, err)
}

func TestALeaseWhoseSessionIsRemovedIsLost(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	lost := make(chan error, 2)
	// An hour's ttl: the lease must see the loss at its next keep-alive,
	// not wait for the session's expire time.
	lease := must(c.RegisterWithKeepAlive(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/lost", TTL: time.Hour},
		sessionregistry.LeaseOptions{Interval: 100 * time.Millisecond, OnLost: func(err error) { lost <- err }}))(t)
	must(c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: lease.ID()}))(t)
	stopped(t, lease)
	if e := as[*sessionregistry.SessionNotFoundError](t, lease.Err()); e.SessionID != lease.ID() {
		t.Fatalf("lost with %+v", e)
	}
	if err := <-lost; err != lease.Err() || len(lost) != 0 {
		t.Fatalf("OnLost got %v", err)
	}
}

func TestClosingTheClientStopsItsLeasesWithoutALoss(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	other := newClient(t, defaultDaemon(t))
	lease := must(other.RegisterWithKeepAlive(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/closed", TTL: time.Second},
		sessionregistry.LeaseOptions{OnLost: func(err error) { t.Errorf("lost: %v", err) }}))(t)
	other.Close()
	stopped(t, lease)
	if lease.Err() != nil {
		t.Fatalf("got %v", lease.Err())
	}
	lease.Close() // idempotent
}

func TestRegisterWithKeepAliveChecksTheTTLAndIntervalFirst(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	for _, tc := range []struct {
		ttl, interval time.Duration
	}{{0, 0}, {500 * time.Millisecond, 0}, {time.Second, time.Second}, {time.Second, -time.Millisecond}} {
		if _, err := c.RegisterWithKeepAlive(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/bad", TTL: tc.ttl},
			sessionregistry.LeaseOptions{Interval: tc.interval}); err == nil {
			t.Fatalf("ttl %v, interval %v was taken", tc.ttl, tc.interval)
		}
	}
	if n := must(c.GetTable(ctx, table))(t).GetSessionCount(); n != 0 {
		t.Fatalf("%d sessions registered", n)
	}
}

func TestATokenGoesWithEveryCallWatchesAndKeepAlivesIncluded(t *testing.T) {
	addr := authDaemon(t)
	admin := newClient(t, addr, sessionregistry.WithToken(adminToken))
	if _, _, err := admin.CreateTable(ctx, authTable, 10); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, addr, sessionregistry.WithToken(writeToken))
	w := watch(t, c, sessionregistry.WatchOptions{Table: authTable})
	nextItem(t, w)
	lease := must(c.RegisterWithKeepAlive(ctx, sessionregistry.RegisterInput{Table: authTable, ProjectPath: "/auth/lease", TTL: time.Second},
		sessionregistry.LeaseOptions{Interval: 200 * time.Millisecond}))(t)
	if item := nextItem(t, w); item.Session.GetId() != lease.ID() {
		t.Fatalf("got %v", kinds(item))
	}
	eventually(t, "two renewals", func() bool { return lease.Renewals() >= 2 || lease.Err() != nil })
	if lease.Err() != nil {
		t.Fatalf("the lease lost its session: %v", lease.Err())
	}
	must(lease.Remove(ctx))(t)
	reader := newClient(t, addr, sessionregistry.WithToken(readToken))
	_, err := reader.Register(ctx, sessionregistry.RegisterInput{Table: authTable, ProjectPath: "/auth/denied"})
	// A role too low is refused before the request, which names the table, is read.
	if e := as[*sessionregistry.PermissionDeniedError](t, err); e.Role != "read" || e.Method != "Register" || e.Table != "" {
		t.Fatalf("got %+v", e)
	}
}
