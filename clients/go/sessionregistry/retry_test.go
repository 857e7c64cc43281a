// request_id retries of Register, Update and Remove. The fault is made by
// an interceptor that lets a call reach the daemon, then drops its answer
// and reports UNAVAILABLE, as a connection lost after the daemon answered
// would: the write took effect, the client did not learn of it. The retry
// must then come back with the first attempt's result, never with
// SESSION_EXISTS, REVISION_MISMATCH or NOT_FOUND.

package sessionregistry_test

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/session-registry/session-registry/clients/go/sessionregistry"
)

// lostAnswers drops the answers of the next n calls of one method (e.g.
// "/sessionregistry.v1.SessionRegistry/Register") and records the request
// id of every call of it.
type lostAnswers struct {
	method string
	mu     sync.Mutex
	lose   int
	ids    []string
}

func (l *lostAnswers) option() grpc.DialOption {
	return grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method != l.method {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		l.mu.Lock()
		l.ids = append(l.ids, req.(interface{ GetRequestId() string }).GetRequestId())
		lose := l.lose > 0
		if lose {
			l.lose--
		}
		l.mu.Unlock()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if lose && err == nil {
			return status.Error(codes.Unavailable, "connection lost after the daemon answered (injected)")
		}
		return err
	})
}

func (l *lostAnswers) requestIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...)
}

// quick retries at once, so that the tests do not wait out real backoffs.
var quick = sessionregistry.WithRetry(sessionregistry.RetryOptions{MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})

const rpc = "/sessionregistry.v1.SessionRegistry/"

// lossyClient is a client whose next lose answers to method are lost, with
// a client that reaches the daemon directly and a fresh table.
func lossyClient(t *testing.T, method string, lose int, opts ...sessionregistry.Option) (
	c, direct *sessionregistry.Client, table string, lost *lostAnswers) {
	t.Helper()
	addr := defaultDaemon(t)
	direct = newClient(t, addr)
	lost = &lostAnswers{method: rpc + method, lose: lose}
	c = newClient(t, addr, append(opts, sessionregistry.WithDialOptions(lost.option()))...)
	return c, direct, newTable(t, direct, 10), lost
}

// sameID checks that there were n attempts, all with one non-empty request id.
func sameID(t testing.TB, ids []string, n int) {
	t.Helper()
	if len(ids) != n || ids[0] == "" {
		t.Fatalf("request ids %q, want %d equal ones", ids, n)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("request ids %q differ", ids)
		}
	}
}

func TestARegisterWhoseAnswerWasLostReturnsTheSessionItRegistered(t *testing.T) {
	var events []sessionregistry.RetryEvent
	c, direct, table, lost := lossyClient(t, "Register", 1, quick,
		sessionregistry.WithOnRetry(func(e sessionregistry.RetryEvent) { events = append(events, e) }))
	s := must(c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/retried"}))(t)
	sameID(t, lost.requestIDs(), 2)
	all := must(direct.ListPage(ctx, table, 0, ""))(t)
	if len(all.GetSessions()) != 1 || !protoEqual(all.GetSessions()[0], s) {
		t.Fatalf("the table holds %v, the retry returned %v", all.GetSessions(), s)
	}
	if len(events) != 1 || events[0].Method != "Register" || events[0].Attempt != 1 || events[0].MaxAttempts != 5 ||
		status.Code(events[0].Err) != codes.Unavailable || events[0].Delay <= 0 {
		t.Fatalf("retry events %+v", events)
	}
	// The caller's own request id is sent as it is.
	c, _, table, lost = lossyClient(t, "Register", 1, quick)
	again := must(c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/mine", RequestID: "my-request-1"}))(t)
	if ids := lost.requestIDs(); !reflect.DeepEqual(ids, []string{"my-request-1", "my-request-1"}) {
		t.Fatalf("request ids %q", ids)
	}
	if again.GetProjectPath() != "/mine" {
		t.Fatalf("got %v", again)
	}
}

func TestAConditionalUpdateWhoseAnswerWasLostReturnsItsResult(t *testing.T) {
	c, direct, table, lost := lossyClient(t, "Update", 1, quick)
	s := register(t, direct, sessionregistry.RegisterInput{Table: table, ProjectPath: "/u"})
	u := must(c.Update(ctx, sessionregistry.UpdateInput{
		Table: table, ID: s.GetId(), Name: sessionregistry.Ptr("once"), ExpectedRevision: s.GetRevision(), TableUID: s.GetTableUid(),
	}))(t)
	sameID(t, lost.requestIDs(), 2)
	now := must(direct.Lookup(ctx, table, sessionregistry.ByID(s.GetId())))(t)
	if u.GetName() != "once" || !protoEqual(u, now) {
		t.Fatalf("the retry returned %v, the table holds %v", u, now)
	}
}

func TestARemoveWhoseAnswerWasLostReturnsTheRemovedSession(t *testing.T) {
	c, direct, table, lost := lossyClient(t, "Remove", 1, quick)
	s := register(t, direct, sessionregistry.RegisterInput{Table: table, ProjectPath: "/r"})
	removed := must(c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: s.GetId()}))(t)
	sameID(t, lost.requestIDs(), 2)
	if !protoEqual(removed, s) {
		t.Fatalf("the retry returned %v, want %v", removed, s)
	}
}

func TestRetriesStopAtMaxAttemptsAndOnlyUnavailableIsRetried(t *testing.T) {
	c, _, table, lost := lossyClient(t, "Register", 10,
		sessionregistry.WithRetry(sessionregistry.RetryOptions{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}))
	_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/never-told"})
	if e := as[*sessionregistry.Error](t, err); e.Code != codes.Unavailable || !strings.Contains(e.Message, "injected") {
		t.Fatalf("got %v", err)
	}
	sameID(t, lost.requestIDs(), 3)
	// Anything but UNAVAILABLE is final at once.
	lost = &lostAnswers{method: rpc + "Register"}
	c = newClient(t, defaultDaemon(t), quick, sessionregistry.WithDialOptions(lost.option()))
	_, err = c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/never-told"})
	as[*sessionregistry.ProjectAlreadyOpenError](t, err)
	if n := len(lost.requestIDs()); n != 1 {
		t.Fatalf("%d attempts", n)
	}
}

func TestWithoutRetryOneAttemptAndNoRequestID(t *testing.T) {
	c, _, table, lost := lossyClient(t, "Register", 1, sessionregistry.WithoutRetry())
	_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/once"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v", err)
	}
	if ids := lost.requestIDs(); !reflect.DeepEqual(ids, []string{""}) {
		t.Fatalf("request ids %q", ids)
	}
	// The daemon did register it: a plain repeat now collides with it.
	_, err = c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/once"})
	as[*sessionregistry.ProjectAlreadyOpenError](t, err)
}
