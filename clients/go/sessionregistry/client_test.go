// Tables and sessions against the real daemon: the limit, uniqueness,
// lookups, paging, Update with a mask and an expected revision, Remove, a
// closed client, and the options New checks.

package sessionregistry_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/session-registry/session-registry/clients/go/gen/sessionregistry/v1"
	"github.com/session-registry/session-registry/clients/go/sessionregistry"
)

var ctx = context.Background()

func register(t testing.TB, c *sessionregistry.Client, in sessionregistry.RegisterInput) *pb.Session {
	t.Helper()
	return must(c.Register(ctx, in))(t)
}

func TestTheLimitHoldsExactlyMaxSessions(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 3)
	var first *pb.Session
	for i := 0; i < 3; i++ {
		s := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: fmt.Sprintf("/limit/%d", i)})
		if first == nil {
			first = s
		}
	}
	_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/limit/3"})
	full := as[*sessionregistry.SessionLimitReachedError](t, err)
	if full.Table != table || full.Current != 3 || full.Max != 3 {
		t.Fatalf("got table %q current %d max %d", full.Table, full.Current, full.Max)
	}
	if full.Code != codes.ResourceExhausted || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("code %v, status.Code %v", full.Code, status.Code(err))
	}
	if got := must(c.GetTable(ctx, table))(t).GetSessionCount(); got != 3 {
		t.Fatalf("session count %d after the refusal", got)
	}
	// A removal frees the slot.
	must(c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: first.GetId()}))(t)
	register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/limit/3"})
}

func TestIDsAndProjectPathsAreUniqueWithinATable(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	a := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "a", ProjectPath: "/p/a"})
	if a.GetName() != "a" || a.GetTableUid() == "" || a.GetRevision() == 0 {
		t.Fatalf("registered %v", a)
	}
	_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: table, ID: "a", ProjectPath: "/p/b"})
	exists := as[*sessionregistry.SessionExistsError](t, err)
	if exists.Table != table || exists.SessionID != "a" || exists.Code != codes.AlreadyExists {
		t.Fatalf("got %+v", exists)
	}
	// The same path, written differently, is the same project.
	_, err = c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/p//a/./"})
	open := as[*sessionregistry.ProjectAlreadyOpenError](t, err)
	if open.SessionID != "a" || open.ProjectPath != "/p/a" || open.Table != table {
		t.Fatalf("got %+v", open)
	}
	// Another table is another namespace.
	other := newTable(t, c, 10)
	register(t, c, sessionregistry.RegisterInput{Table: other, ID: "a", ProjectPath: "/p/a"})
}

func TestLookupByIDPathAndName(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	one := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/w/one", Metadata: map[string]string{"k": "v"}})
	older := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/w/two", Name: "twin"})
	register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/w/three", Name: "twin"})
	for _, tc := range []struct {
		key  sessionregistry.LookupKey
		want *pb.Session
	}{
		{sessionregistry.ByID(one.GetId()), one},
		{sessionregistry.ByProjectPath("/w//one/"), one},
		{sessionregistry.ByName("one"), one},
		{sessionregistry.ByName("twin"), older}, // the oldest with that name
	} {
		got := must(c.Lookup(ctx, table, tc.key))(t)
		if !protoEqual(got, tc.want) {
			t.Fatalf("lookup %v: got %v, want %v", tc.key, got, tc.want)
		}
	}
	_, err := c.Lookup(ctx, table, sessionregistry.ByID("ghost"))
	if e := as[*sessionregistry.SessionNotFoundError](t, err); e.SessionID != "ghost" || e.Table != table {
		t.Fatalf("got %+v", e)
	}
	_, err = c.Lookup(ctx, table, sessionregistry.ByProjectPath("/nope/"))
	if e := as[*sessionregistry.SessionNotFoundError](t, err); e.ProjectPath != "/nope" || e.SessionID != "" {
		t.Fatalf("got %+v", e)
	}
	_, err = c.Lookup(ctx, table, sessionregistry.ByName("nobody"))
	if e := as[*sessionregistry.SessionNotFoundError](t, err); e.SessionName != "nobody" {
		t.Fatalf("got %+v", e)
	}
	// No key at all is the caller's mistake, found before any call.
	_, err = c.Lookup(ctx, table, sessionregistry.LookupKey{})
	var registryErr *sessionregistry.Error
	if err == nil || errors.As(err, &registryErr) {
		t.Fatalf("got %v", err)
	}
}

func TestListPagesInCreationOrder(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 100)
	var made []string
	for i := 0; i < 7; i++ {
		made = append(made, register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: fmt.Sprintf("/page/%d", i)}).GetId())
	}
	revision := must(c.GetTable(ctx, table))(t).GetRevision()
	var got []string
	var sizes []int
	token := ""
	for {
		page := must(c.ListPage(ctx, table, 3, token))(t)
		if page.GetTotalSize() != 7 || page.GetRevision() != revision || page.GetTableUid() == "" {
			t.Fatalf("page: total %d, revision %d (want %d), uid %q", page.GetTotalSize(), page.GetRevision(), revision, page.GetTableUid())
		}
		sizes = append(sizes, len(page.GetSessions()))
		for _, s := range page.GetSessions() {
			got = append(got, s.GetId())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if !reflect.DeepEqual(sizes, []int{3, 3, 1}) || !reflect.DeepEqual(got, made) {
		t.Fatalf("pages of %v: %v, want %v", sizes, got, made)
	}
	// The iterator fetches the pages itself.
	it := c.List(ctx, table, 2)
	got = nil
	for it.Next() {
		got = append(got, it.Session().GetId())
	}
	if it.Err() != nil || !reflect.DeepEqual(got, made) {
		t.Fatalf("iterated %v (%v), want %v", got, it.Err(), made)
	}
	it = c.List(ctx, unique("missing"), 0)
	if it.Next() {
		t.Fatal("a missing table has sessions")
	}
	as[*sessionregistry.TableNotFoundError](t, it.Err())
}

func TestUpdateWithAMaskAndAnExpectedRevision(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	s := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/u/a", Name: "first", Metadata: map[string]string{"k": "v"}})
	update := func(in sessionregistry.UpdateInput) *pb.Session {
		t.Helper()
		in.Table, in.ID = table, s.GetId()
		return must(c.Update(ctx, in))(t)
	}

	// The mask limits the change to the fields it names.
	masked := update(sessionregistry.UpdateInput{
		Name: sessionregistry.Ptr("second"), Metadata: map[string]string{"x": "y"}, UpdateMask: []string{sessionregistry.PathName},
	})
	if masked.GetName() != "second" || !reflect.DeepEqual(masked.GetMetadata(), map[string]string{"k": "v"}) || masked.GetRevision() <= s.GetRevision() {
		t.Fatalf("masked update gave %v", masked)
	}
	// Without a mask, the fields given.
	implied := update(sessionregistry.UpdateInput{Metadata: map[string]string{"n": "1"}})
	if implied.GetName() != "second" || !reflect.DeepEqual(implied.GetMetadata(), map[string]string{"n": "1"}) {
		t.Fatalf("implied mask gave %v", implied)
	}
	// An empty map clears the metadata; an empty name is derived again.
	cleared := update(sessionregistry.UpdateInput{Metadata: map[string]string{}, Name: sessionregistry.Ptr("")})
	if len(cleared.GetMetadata()) != 0 || cleared.GetName() != "a" {
		t.Fatalf("clearing gave %v", cleared)
	}
	// A ttl is set, then cleared.
	withTTL := update(sessionregistry.UpdateInput{TTL: sessionregistry.Ptr(time.Hour)})
	if withTTL.GetTtl().AsDuration() != time.Hour || withTTL.GetExpireTime() == nil {
		t.Fatalf("ttl update gave %v", withTTL)
	}
	noTTL := update(sessionregistry.UpdateInput{TTL: sessionregistry.Ptr(time.Duration(0))})
	if noTTL.GetTtl() != nil || noTTL.GetExpireTime() != nil {
		t.Fatalf("ttl clear gave %v", noTTL)
	}

	// expected_revision: a stale etag is refused with the current revision.
	_, err := c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: s.GetId(), Name: sessionregistry.Ptr("late"), ExpectedRevision: s.GetRevision()})
	mismatch := as[*sessionregistry.RevisionMismatchError](t, err)
	if mismatch.CurrentRevision != int64(noTTL.GetRevision()) || mismatch.SessionID != s.GetId() || mismatch.Code != codes.Aborted {
		t.Fatalf("got %+v, current revision %d", mismatch, noTTL.GetRevision())
	}
	// The current etag, with its history, applies.
	current := update(sessionregistry.UpdateInput{Name: sessionregistry.Ptr("on time"), ExpectedRevision: noTTL.GetRevision(), TableUID: noTTL.GetTableUid()})
	if current.GetName() != "on time" {
		t.Fatalf("got %v", current)
	}
	// An etag of another history never matches, whatever its number.
	_, err = c.Update(ctx, sessionregistry.UpdateInput{
		Table: table, ID: s.GetId(), Name: sessionregistry.Ptr("x"), ExpectedRevision: current.GetRevision(), TableUID: "another-history",
	})
	uid := as[*sessionregistry.TableUIDMismatchError](t, err)
	if uid.TableUID != current.GetTableUid() || uid.CurrentRevision != int64(current.GetRevision()) || uid.Table != table {
		t.Fatalf("got %+v", uid)
	}
	as[*sessionregistry.HistoryChangedError](t, err)

	// A new project path is checked for uniqueness.
	register(t, c, sessionregistry.RegisterInput{Table: table, ID: "b", ProjectPath: "/u/b"})
	_, err = c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: s.GetId(), ProjectPath: sessionregistry.Ptr("/u/b")})
	if e := as[*sessionregistry.ProjectAlreadyOpenError](t, err); e.SessionID != "b" {
		t.Fatalf("got %+v", e)
	}
	_, err = c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: "ghost", Name: sessionregistry.Ptr("x")})
	as[*sessionregistry.SessionNotFoundError](t, err)
}

func TestRemoveReturnsTheSessionAsItWas(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	table := newTable(t, c, 10)
	s := register(t, c, sessionregistry.RegisterInput{Table: table, ProjectPath: "/r"})
	_, err := c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: s.GetId(), ExpectedRevision: s.GetRevision() + 1})
	as[*sessionregistry.RevisionMismatchError](t, err)
	removed := must(c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: s.GetId(), ExpectedRevision: s.GetRevision(), TableUID: s.GetTableUid()}))(t)
	if !protoEqual(removed, s) {
		t.Fatalf("removed %v, want %v", removed, s)
	}
	_, err = c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: s.GetId()})
	as[*sessionregistry.SessionNotFoundError](t, err)
	missing, err := c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: s.GetId(), AllowMissing: true})
	if missing != nil || err != nil {
		t.Fatalf("allow missing gave %v, %v", missing, err)
	}
}

func TestTables(t *testing.T) {
	c := newClient(t, defaultDaemon(t))
	name := unique("go-tables")
	made, created := must2(c.CreateTable(ctx, name, 2))(t)
	if !created || made.GetName() != name || made.GetMaxSessions() != 2 || made.GetTableUid() == "" {
		t.Fatalf("created %v (%v)", made, created)
	}
	t.Cleanup(func() { _ = c.DeleteTable(ctx, name, true) })
	again, created := must2(c.CreateTable(ctx, name, 0))(t)
	if created || !protoEqual(again, made) {
		t.Fatalf("again %v (%v)", again, created)
	}
	register(t, c, sessionregistry.RegisterInput{Table: name, ProjectPath: "/t"})
	if got := must(c.GetTable(ctx, name))(t); got.GetSessionCount() != 1 || got.GetRevision() == 0 {
		t.Fatalf("got %v", got)
	}
	var names []string
	for _, tb := range must(c.ListTables(ctx))(t) {
		names = append(names, tb.GetName())
	}
	if !sort.StringsAreSorted(names) || !contains(names, name) || !contains(names, "default") {
		t.Fatalf("tables %v", names)
	}
	if e := as[*sessionregistry.TableNotEmptyError](t, c.DeleteTable(ctx, name, false)); e.SessionCount != 1 {
		t.Fatalf("got %+v", e)
	}
	if err := c.DeleteTable(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetTable(ctx, name)
	as[*sessionregistry.TableNotFoundError](t, err)
	info := must(c.ServerInfo(ctx))(t)
	if info.GetStore() != "memory" || !info.GetStoreAvailable() || info.GetVersion() == "" {
		t.Fatalf("server info %v", info)
	}
}

func TestAClosedClientAndADeadPort(t *testing.T) {
	c, err := sessionregistry.New(defaultDaemon(t))
	if err != nil {
		t.Fatal(err)
	}
	must(c.ListTables(ctx))(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	_, err = c.GetTable(ctx, "")
	if e := as[*sessionregistry.Error](t, err); e.Code != codes.Canceled {
		t.Fatalf("got %v", err)
	}
	_, err = c.Watch(ctx, sessionregistry.WatchOptions{}).Next()
	if e := as[*sessionregistry.Error](t, err); e.Code != codes.Canceled {
		t.Fatalf("a watch on a closed client: %v", err)
	}
	dead := newClient(t, "127.0.0.1:1", sessionregistry.WithoutRetry(), sessionregistry.WithTimeout(2*time.Second))
	_, err = dead.ListTables(ctx)
	e := as[*sessionregistry.Error](t, err)
	if e.Reason != "" || (e.Code != codes.Unavailable && e.Code != codes.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestNewChecksItsOptions(t *testing.T) {
	for _, opt := range []sessionregistry.Option{
		sessionregistry.WithRetry(sessionregistry.RetryOptions{MaxAttempts: 0}),
		sessionregistry.WithRetry(sessionregistry.RetryOptions{MaxAttempts: 2, InitialBackoff: -time.Second}),
		sessionregistry.WithTimeout(-time.Second),
	} {
		if c, err := sessionregistry.New("127.0.0.1:1", opt); err == nil {
			c.Close()
			t.Fatal("a bad option was taken")
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
