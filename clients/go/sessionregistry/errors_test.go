// Every ErrorInfo reason, made by a real daemon (INTERNAL aside: the daemon
// sends it only on a bug, so it is built here as the daemon would send it),
// read back through the typed errors with all their details; and
// FromError's decoding of odd trailers.

package sessionregistry_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/session-registry/session-registry/clients/go/sessionregistry"
)

// The tokens of the daemon that authenticates (authDaemon).
const (
	adminToken = "admin-token-3f9a6c1d2e7b4a58"
	writeToken = "write-token-8b2e4d7f1a9c3e60"
	readToken  = "read-token-5c7e9a1b3d2f4e68"
	// authTable is the one table the write token may write, besides default.
	authTable = "go-auth-a"
)

var (
	tokensOnce sync.Once
	tokensFile string
	tokensErr  error
)

// authDaemon needs a bearer token on every call (--auth-tokens).
func authDaemon(t testing.TB) string {
	t.Helper()
	tokensOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sr-go-auth-")
		if err != nil {
			tokensErr = err
			return
		}
		atExit = append(atExit, func() { os.RemoveAll(dir) })
		tokensFile = filepath.Join(dir, "tokens")
		tokensErr = os.WriteFile(tokensFile, []byte(fmt.Sprintf(
			"# ROLE TOKEN [TABLE ...]\nadmin %s\nwrite %s default %s\nread %s\n",
			adminToken, writeToken, authTable, readToken)), 0o600)
	})
	if tokensErr != nil {
		t.Fatal(tokensErr)
	}
	return shared(t, "--auth-tokens", tokensFile).addr
}

// budgetDaemon has the smallest memory budget, 16 MiB: sessions may take 12 MiB of it.
func budgetDaemon(t testing.TB) string { return shared(t, "--memory-budget", "16MiB").addr }

// Where storeDown's daemon looks for an etcd that never answers.
var (
	deadEtcdOnce sync.Once
	deadEtcd     string
)

// storeDown is a daemon on the etcd store whose etcd is not there: it
// starts and answers, but cannot serve tables.
func storeDown(t testing.TB) string {
	deadEtcdOnce.Do(func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadEtcd = "http://" + l.Addr().String()
		l.Close() // nothing listens there now
	})
	return shared(t, "--store", "etcd", "--etcd-endpoints", deadEtcd).addr
}

// bigMetadata is keys x 4 KB of metadata (4 keys: about the most a session may carry).
func bigMetadata(n, keys int) map[string]string {
	m := map[string]string{}
	for j := 0; j < keys; j++ {
		m[fmt.Sprintf("k%d", j)] = fmt.Sprintf("%06d", n) + strings.Repeat("x", 4000)
	}
	return m
}

// reasonCase makes one reason's error and says what it must carry.
type reasonCase struct {
	code codes.Code
	// make returns the error; fields are what its ErrorInfo metadata must
	// be, "*" standing for any non-empty value.
	make func(t *testing.T) (err error, fields map[string]string)
	// check reads the typed error's fields; nil for reasons no SDK types.
	check func(t *testing.T, err error, fields map[string]string)
}

// seeded is a table of limit 2 holding s1 (/p/s1) and s2 (/p/s2).
func seeded(t *testing.T, c *sessionregistry.Client) (table string, s1rev uint64) {
	table = newTable(t, c, 2)
	s1 := register(t, c, sessionregistry.RegisterInput{Table: table, ID: "s1", ProjectPath: "/p/s1"})
	register(t, c, sessionregistry.RegisterInput{Table: table, ID: "s2", ProjectPath: "/p/s2"})
	return table, s1.GetRevision()
}

func reasonCases() map[string]reasonCase {
	var compactedWrites []uint64 // the writes of the REVISION_COMPACTED case, for its check
	return map[string]reasonCase{
		sessionregistry.ReasonInvalidArgument: {codes.InvalidArgument,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: "-bad", ID: "a b", Name: "bad\nname", ProjectPath: "relative"})
				return err, map[string]string{}
			},
			func(t *testing.T, err error, _ map[string]string) {
				e := as[*sessionregistry.InvalidArgumentError](t, err)
				var fields []string
				for _, v := range e.FieldViolations {
					if v.Description == "" {
						t.Fatalf("violation of %s has no description", v.Field)
					}
					fields = append(fields, v.Field)
				}
				sort.Strings(fields)
				if !reflect.DeepEqual(fields, []string{"session.id", "session.name", "session.project_path", "table"}) {
					t.Fatalf("field violations %v", e.FieldViolations)
				}
			}},
		sessionregistry.ReasonTableNotFound: {codes.NotFound,
			func(t *testing.T) (error, map[string]string) {
				missing := unique("missing")
				_, err := newClient(t, defaultDaemon(t)).GetTable(ctx, missing)
				return err, map[string]string{"table": missing}
			},
			func(t *testing.T, err error, f map[string]string) {
				if e := as[*sessionregistry.TableNotFoundError](t, err); e.Table != f["table"] {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonTableExists: {codes.AlreadyExists,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table := newTable(t, c, 2)
				_, _, err := c.CreateTable(ctx, table, 3)
				return err, map[string]string{"table": table, "max_sessions": "2"}
			},
			func(t *testing.T, err error, f map[string]string) {
				if e := as[*sessionregistry.TableExistsError](t, err); e.Table != f["table"] || e.MaxSessions != 2 {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonTableNotEmpty: {codes.FailedPrecondition,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table, _ := seeded(t, c)
				return c.DeleteTable(ctx, table, false), map[string]string{"table": table, "session_count": "2"}
			},
			func(t *testing.T, err error, f map[string]string) {
				if e := as[*sessionregistry.TableNotEmptyError](t, err); e.Table != f["table"] || e.SessionCount != 2 {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonTableLimitReached: {codes.ResourceExhausted,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, tiny(t))
				for i := 0; i < 3; i++ { // the daemon holds default and one more
					name := unique("go-limit")
					if _, _, err := c.CreateTable(ctx, name, 1); err != nil {
						return err, map[string]string{"current": "2", "max": "2"}
					}
					t.Cleanup(func() { _ = c.DeleteTable(ctx, name, true) })
				}
				t.Fatal("the table limit was never reached")
				return nil, nil
			},
			func(t *testing.T, err error, _ map[string]string) {
				if e := as[*sessionregistry.TableLimitReachedError](t, err); e.Current != 2 || e.Max != 2 {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonSessionNotFound: {codes.NotFound,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table, _ := seeded(t, c)
				_, err := c.Lookup(ctx, table, sessionregistry.ByID("ghost"))
				return err, map[string]string{"table": table, "session_id": "ghost"}
			},
			func(t *testing.T, err error, f map[string]string) {
				if e := as[*sessionregistry.SessionNotFoundError](t, err); e.Table != f["table"] || e.SessionID != "ghost" {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonSessionExists: {codes.AlreadyExists,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table := newTable(t, c, 5)
				register(t, c, sessionregistry.RegisterInput{Table: table, ID: "s1", ProjectPath: "/p/s1"})
				_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: table, ID: "s1", ProjectPath: "/o"})
				return err, map[string]string{"table": table, "session_id": "s1"}
			},
			func(t *testing.T, err error, f map[string]string) {
				if e := as[*sessionregistry.SessionExistsError](t, err); e.Table != f["table"] || e.SessionID != "s1" {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonSessionLimitReached: {codes.ResourceExhausted,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table, _ := seeded(t, c)
				_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: table, ProjectPath: "/x"})
				return err, map[string]string{"table": table, "current": "2", "max": "2"}
			},
			func(t *testing.T, err error, f map[string]string) {
				e := as[*sessionregistry.SessionLimitReachedError](t, err)
				if e.Table != f["table"] || e.Current != 2 || e.Max != 2 {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonProjectAlreadyOpen: {codes.AlreadyExists,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table, _ := seeded(t, c)
				_, err := c.Update(ctx, sessionregistry.UpdateInput{Table: table, ID: "s2", ProjectPath: sessionregistry.Ptr("/p/s1/")})
				return err, map[string]string{"table": table, "session_id": "s1", "project_path": "/p/s1"}
			},
			func(t *testing.T, err error, f map[string]string) {
				e := as[*sessionregistry.ProjectAlreadyOpenError](t, err)
				if e.Table != f["table"] || e.SessionID != "s1" || e.ProjectPath != "/p/s1" {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonRevisionMismatch: {codes.Aborted,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table, rev := seeded(t, c)
				_, err := c.Remove(ctx, sessionregistry.RemoveInput{Table: table, ID: "s1", ExpectedRevision: rev + 1000})
				return err, map[string]string{"table": table, "session_id": "s1", "current_revision": fmt.Sprint(rev)}
			},
			func(t *testing.T, err error, f map[string]string) {
				e := as[*sessionregistry.RevisionMismatchError](t, err)
				if e.Table != f["table"] || e.SessionID != "s1" || fmt.Sprint(e.CurrentRevision) != f["current_revision"] {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonRevisionCompacted: {codes.OutOfRange,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, bounded(t))
				table := newTable(t, c, 10)
				compactedWrites = history(t, c, table)
				_, err := c.Watch(ctx, sessionregistry.WatchOptions{Table: table, StartRevision: compactedWrites[0]}).Next()
				return err, map[string]string{"table": table, "compact_revision": "*"}
			},
			func(t *testing.T, err error, f map[string]string) {
				e := as[*sessionregistry.RevisionCompactedError](t, err)
				// The 100 newest events are kept: the oldest start served is just after the 8th write.
				written := compactedWrites
				if e.Table != f["table"] || e.CompactRevision <= int64(written[7]) || e.CompactRevision > int64(written[8]) {
					t.Fatalf("got %+v for writes %v", e, written[:9])
				}
			}},
		sessionregistry.ReasonTableUIDMismatch: {codes.Aborted,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table, _ := seeded(t, c)
				now := must(c.GetTable(ctx, table))(t)
				_, err := c.Watch(ctx, sessionregistry.WatchOptions{Table: table, StartRevision: 1, TableUID: "another-history"}).Next()
				return err, map[string]string{"table": table, "table_uid": now.GetTableUid(), "current_revision": fmt.Sprint(now.GetRevision())}
			},
			func(t *testing.T, err error, f map[string]string) {
				e := as[*sessionregistry.TableUIDMismatchError](t, err)
				if e.Table != f["table"] || e.TableUID != f["table_uid"] || fmt.Sprint(e.CurrentRevision) != f["current_revision"] {
					t.Fatalf("got %+v", e)
				}
				as[*sessionregistry.HistoryChangedError](t, err)
			}},
		sessionregistry.ReasonFutureRevision: {codes.OutOfRange,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, defaultDaemon(t))
				table, _ := seeded(t, c)
				now := must(c.GetTable(ctx, table))(t)
				_, err := c.Watch(ctx, sessionregistry.WatchOptions{Table: table, StartRevision: now.GetRevision() + 1000}).Next()
				return err, map[string]string{"table": table, "table_uid": now.GetTableUid(), "current_revision": fmt.Sprint(now.GetRevision())}
			},
			func(t *testing.T, err error, f map[string]string) {
				e := as[*sessionregistry.FutureRevisionError](t, err)
				if e.Table != f["table"] || e.TableUID != f["table_uid"] || fmt.Sprint(e.CurrentRevision) != f["current_revision"] {
					t.Fatalf("got %+v", e)
				}
				as[*sessionregistry.HistoryChangedError](t, err)
			}},
		sessionregistry.ReasonWatcherTooSlow: {codes.ResourceExhausted,
			func(t *testing.T) (error, map[string]string) {
				w, table, written := stalledWatch(t, false, 60)
				items, err := ending(t, w)
				if len(items) == 0 || len(items) >= len(written) {
					t.Fatalf("%d of %d events before the end", len(items), len(written))
				}
				return err, map[string]string{"table": table, "resume_revision": fmt.Sprint(written[len(items)])}
			},
			func(t *testing.T, err error, f map[string]string) {
				e := as[*sessionregistry.WatcherTooSlowError](t, err)
				if e.Table != f["table"] || fmt.Sprint(e.ResumeRevision) != f["resume_revision"] {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonWatcherLimitReached: {codes.ResourceExhausted,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, tiny(t))
				first := c.Watch(ctx, sessionregistry.WatchOptions{})
				defer first.Close()
				nextItem(t, first)
				_, err := c.Watch(ctx, sessionregistry.WatchOptions{}).Next()
				return err, map[string]string{"current": "1", "max": "1"}
			},
			func(t *testing.T, err error, _ map[string]string) {
				if e := as[*sessionregistry.WatcherLimitReachedError](t, err); e.Current != 1 || e.Max != 1 {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonMemoryBudgetReached: {codes.ResourceExhausted,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, budgetDaemon(t))
				table := newTable(t, c, 100000)
				for n := 0; n < 5000; n++ {
					_, err := c.Register(ctx, sessionregistry.RegisterInput{
						Table: table, ID: fmt.Sprint("s", n), ProjectPath: fmt.Sprint("/s/", n), Metadata: bigMetadata(n, 4),
					})
					if err != nil {
						return err, map[string]string{"used_bytes": "*", "budget_bytes": fmt.Sprint(16 << 20 * 3 / 4)}
					}
				}
				t.Fatal("never refused: the budget does not hold sessions")
				return nil, nil
			},
			func(t *testing.T, err error, _ map[string]string) {
				e := as[*sessionregistry.MemoryBudgetReachedError](t, err)
				if e.BudgetBytes != 16<<20*3/4 || e.UsedBytes <= 0 {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonShuttingDown: {codes.Unavailable,
			func(t *testing.T) (error, map[string]string) {
				d, err := startDaemon()
				if err != nil {
					t.Fatal(err)
				}
				defer d.stop()
				c := newClient(t, d.addr, sessionregistry.WithoutRetry())
				w := c.Watch(ctx, sessionregistry.WatchOptions{})
				nextItem(t, w)
				d.terminate()
				_, err = next(t, w)
				return err, map[string]string{}
			},
			nil},
		sessionregistry.ReasonStoreUnavailable: {codes.Unavailable,
			func(t *testing.T) (error, map[string]string) {
				_, err := newClient(t, storeDown(t), sessionregistry.WithoutRetry()).GetTable(ctx, "")
				return err, map[string]string{"store": "etcd", "endpoints": deadEtcd}
			},
			func(t *testing.T, err error, _ map[string]string) {
				if e := as[*sessionregistry.StoreUnavailableError](t, err); e.Store != "etcd" || e.Endpoints != deadEtcd {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonUnauthenticated: {codes.Unauthenticated,
			func(t *testing.T) (error, map[string]string) {
				_, err := newClient(t, authDaemon(t)).GetTable(ctx, "")
				return err, map[string]string{}
			},
			func(t *testing.T, err error, _ map[string]string) {
				as[*sessionregistry.UnauthenticatedError](t, err)
			}},
		sessionregistry.ReasonPermissionDenied: {codes.PermissionDenied,
			func(t *testing.T) (error, map[string]string) {
				c := newClient(t, authDaemon(t), sessionregistry.WithToken(writeToken))
				_, err := c.Register(ctx, sessionregistry.RegisterInput{Table: "go-auth-other", ProjectPath: "/denied"})
				return err, map[string]string{"method": "Register", "role": "write", "table": "go-auth-other"}
			},
			func(t *testing.T, err error, _ map[string]string) {
				e := as[*sessionregistry.PermissionDeniedError](t, err)
				if e.Method != "Register" || e.Role != "write" || e.Table != "go-auth-other" {
					t.Fatalf("got %+v", e)
				}
			}},
		sessionregistry.ReasonInternal: {codes.Internal,
			func(t *testing.T) (error, map[string]string) {
				st := withDetails(t, status.New(codes.Internal, "internal error"),
					&errdetails.ErrorInfo{Reason: sessionregistry.ReasonInternal, Domain: sessionregistry.ErrorDomain})
				return sessionregistry.FromError(st.Err()), map[string]string{}
			},
			nil},
	}
}

func TestEveryErrorReasonCarriesItsDetails(t *testing.T) {
	cases := reasonCases()
	for _, reason := range sessionregistry.Reasons() {
		if _, ok := cases[reason]; !ok {
			t.Errorf("no case makes %s", reason)
		}
	}
	if len(cases) != len(sessionregistry.Reasons()) {
		t.Errorf("%d cases for %d reasons", len(cases), len(sessionregistry.Reasons()))
	}
	for reason, tc := range cases {
		reason, tc := reason, tc
		t.Run(reason, func(t *testing.T) {
			err, fields := tc.make(t)
			e := as[*sessionregistry.Error](t, err)
			if e.Code != tc.code || e.Reason != reason || e.Domain != sessionregistry.ErrorDomain {
				t.Fatalf("got code %v reason %q domain %q: %v", e.Code, e.Reason, e.Domain, err)
			}
			if status.Code(err) != tc.code {
				t.Fatalf("status.Code gives %v", status.Code(err))
			}
			if err.Error() != strings.ToUpper(codeSnake(tc.code))+": "+e.Message || e.Message == "" {
				t.Fatalf("message %q", err.Error())
			}
			if len(e.Metadata) != len(fields) {
				t.Fatalf("metadata %v, want %v", e.Metadata, fields)
			}
			for k, v := range fields {
				if got, ok := e.Metadata[k]; !ok || (v == "*" && got == "") || (v != "*" && got != v) {
					t.Fatalf("metadata %v, want %v", e.Metadata, fields)
				}
			}
			if (len(e.FieldViolations) > 0) != (tc.code == codes.InvalidArgument) {
				t.Fatalf("field violations %v", e.FieldViolations)
			}
			if tc.check != nil {
				tc.check(t, err, fields)
			} else if reflect.TypeOf(err) != reflect.TypeOf(&sessionregistry.Error{}) {
				t.Fatalf("%s is typed as %T; the other SDKs leave it untyped", reason, err)
			}
		})
	}
}

// codeSnake is the canonical name of a code, e.g. RESOURCE_EXHAUSTED.
func codeSnake(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func withDetails(t testing.TB, st *status.Status, details ...*errdetails.ErrorInfo) *status.Status {
	t.Helper()
	for _, d := range details {
		var err error
		if st, err = st.WithDetails(d); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestFromErrorNeverFailsOnOddTrailers(t *testing.T) {
	if sessionregistry.FromError(nil) != nil {
		t.Fatal("nil became an error")
	}
	plain := sessionregistry.FromError(errors.New("boom"))
	if e := as[*sessionregistry.Error](t, plain); e.Code != codes.Unknown || e.Message != "boom" || e.Reason != "" {
		t.Fatalf("got %+v", e)
	}
	// A good ErrorInfo, packed as the daemon packs it.
	info := withDetails(t, status.New(codes.NotFound, "boom"),
		&errdetails.ErrorInfo{Reason: sessionregistry.ReasonTableNotFound, Domain: sessionregistry.ErrorDomain}).Proto().GetDetails()[0]
	for name, details := range map[string][]*anypb.Any{
		"a corrupt ErrorInfo": {{TypeUrl: "type.googleapis.com/google.rpc.ErrorInfo", Value: []byte{0xff, 0xfe}}},
		// All or nothing: a good ErrorInfo beside a corrupt BadRequest is not half-used.
		"a corrupt BadRequest": {info, {TypeUrl: "type.googleapis.com/google.rpc.BadRequest", Value: []byte{0xff}}},
		"an unknown type":      {info, {TypeUrl: "type.googleapis.com/no.such.Type", Value: []byte{}}},
	} {
		err := sessionregistry.FromError(status.FromProto(&spb.Status{Code: int32(codes.NotFound), Message: "boom", Details: details}).Err())
		e := as[*sessionregistry.Error](t, err)
		if reflect.TypeOf(err) != reflect.TypeOf(e) || e.Code != codes.NotFound || e.Message != "boom" || e.Reason != "" || len(e.Metadata) != 0 {
			t.Fatalf("%s: got %T %+v", name, err, e)
		}
	}
	// An unknown reason stays on the base type, with its metadata.
	st := withDetails(t, status.New(codes.FailedPrecondition, "new"),
		&errdetails.ErrorInfo{Reason: "SOMETHING_NEW", Domain: sessionregistry.ErrorDomain, Metadata: map[string]string{"k": "v"}})
	e := as[*sessionregistry.Error](t, sessionregistry.FromError(st.Err()))
	if e.Reason != "SOMETHING_NEW" || e.Metadata["k"] != "v" || e.Code != codes.FailedPrecondition {
		t.Fatalf("got %+v", e)
	}
	// A malformed number is -1, not a misleading 0.
	st = withDetails(t, status.New(codes.ResourceExhausted, "full"),
		&errdetails.ErrorInfo{Reason: sessionregistry.ReasonSessionLimitReached, Metadata: map[string]string{"table": "t", "current": "x"}})
	typed := sessionregistry.FromError(st.Err())
	if full := as[*sessionregistry.SessionLimitReachedError](t, typed); full.Current != -1 || full.Max != -1 || full.Table != "t" {
		t.Fatalf("got %+v", full)
	}
	// Converting twice, or a wrapped error, changes nothing; the gRPC status stays readable.
	if again := sessionregistry.FromError(typed); again != typed {
		t.Fatalf("converted twice: %v", again)
	}
	wrapped := fmt.Errorf("registering: %w", typed)
	if sessionregistry.FromError(wrapped) != wrapped {
		t.Fatal("a wrapped error was converted again")
	}
	as[*sessionregistry.SessionLimitReachedError](t, wrapped)
	if s, ok := status.FromError(typed); !ok || s.Code() != codes.ResourceExhausted || s.Message() != "full" {
		t.Fatalf("status.FromError gives %v, %v", s, ok)
	}
}

// At a limit the daemon's current and max are equal, so the real errors
// cannot tell the two fields apart; these can.
func TestLimitErrorsReadCurrentAndMaxFromTheirOwnKeys(t *testing.T) {
	fields := map[string]string{"table": "t", "current": "3", "max": "4"}
	for _, reason := range []string{sessionregistry.ReasonSessionLimitReached, sessionregistry.ReasonTableLimitReached, sessionregistry.ReasonWatcherLimitReached} {
		st := withDetails(t, status.New(codes.ResourceExhausted, "full"),
			&errdetails.ErrorInfo{Reason: reason, Domain: sessionregistry.ErrorDomain, Metadata: fields})
		var current, max int64
		switch e := sessionregistry.FromError(st.Err()).(type) {
		case *sessionregistry.SessionLimitReachedError:
			current, max = e.Current, e.Max
		case *sessionregistry.TableLimitReachedError:
			current, max = e.Current, e.Max
		case *sessionregistry.WatcherLimitReachedError:
			current, max = e.Current, e.Max
		default:
			t.Fatalf("%s gave %T", reason, e)
		}
		if current != 3 || max != 4 {
			t.Fatalf("%s: current %d, max %d", reason, current, max)
		}
	}
}
