// Package sessionregistry is a thin client of the session-registry daemon
// over its generated gRPC stubs (package sessionregistryv1 in ../gen). It
// adds what every caller would otherwise repeat: a per-call deadline,
// default metadata (a bearer token), plain input structs instead of full
// request messages, typed errors (see errors.go), request_id retries of
// Register, Update and Remove, a Watch that resumes and resyncs (watch.go),
// a WatchTables over the same reconnects (tables_watch.go) and a keep-alive
// lease (lease.go). It returns the generated messages, so
// the proto's comments document them.
package sessionregistry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/session-registry/session-registry/clients/go/gen/sessionregistry/v1"
)

// DefaultTimeout is the deadline of each call unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// RetryOptions says how Register, Update and Remove retry on UNAVAILABLE.
// All attempts of one call share its request id and its one deadline.
type RetryOptions struct {
	// MaxAttempts counts attempts in all, the first included; 1 means no retry.
	MaxAttempts int
	// InitialBackoff is the pause before the first retry, doubled before
	// each next one up to MaxBackoff, with jitter.
	InitialBackoff time.Duration
	// MaxBackoff is the longest pause between attempts.
	MaxBackoff time.Duration
}

// DefaultRetry is what a client uses unless WithRetry or WithoutRetry says otherwise.
var DefaultRetry = RetryOptions{MaxAttempts: 5, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second}

// RetryEvent is one retry about to happen, for WithOnRetry.
type RetryEvent struct {
	// Method is "Register", "Update" or "Remove".
	Method string
	// Attempt is the attempt that failed (1 = the first call).
	Attempt     int
	MaxAttempts int
	// Err is why it failed (always UNAVAILABLE).
	Err error
	// Delay is the pause before the next attempt.
	Delay time.Duration
}

type config struct {
	creds    credentials.TransportCredentials
	metadata []string
	timeout  time.Duration
	retry    *RetryOptions
	onRetry  func(RetryEvent)
	dial     []grpc.DialOption
}

// Option configures New.
type Option func(*config)

// WithTLS dials with TLS; a nil config uses the system's roots. The default is plaintext, as for a daemon on localhost.
func WithTLS(c *tls.Config) Option {
	return func(o *config) { o.creds = credentials.NewTLS(c) }
}

// WithTransportCredentials dials with these credentials (e.g. mTLS built by the caller).
func WithTransportCredentials(c credentials.TransportCredentials) Option {
	return func(o *config) { o.creds = c }
}

// WithToken sends "authorization: Bearer <token>" with every call, watches and keep-alives included.
func WithToken(token string) Option {
	return WithMetadata("authorization", "Bearer "+token)
}

// WithMetadata sends this key and value with every call.
func WithMetadata(key, value string) Option {
	return func(o *config) { o.metadata = append(o.metadata, key, value) }
}

// WithTimeout sets the deadline of each call (all attempts of a retried
// call together); 0 means none beyond the context's. Default DefaultTimeout.
// Watches have none.
func WithTimeout(d time.Duration) Option {
	return func(o *config) { o.timeout = d }
}

// WithRetry sets how Register, Update and Remove retry on UNAVAILABLE.
func WithRetry(r RetryOptions) Option {
	return func(o *config) { o.retry = &r }
}

// WithoutRetry turns retries off; calls then send no request id unless given one.
func WithoutRetry() Option {
	return func(o *config) { o.retry = nil }
}

// WithOnRetry is told before each retry, e.g. to show a person why a call takes long.
func WithOnRetry(f func(RetryEvent)) Option {
	return func(o *config) { o.onRetry = f }
}

// WithDialOptions passes options to grpc.Dial as they are (after the client's own).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *config) { o.dial = append(o.dial, opts...) }
}

// Client is a client of one daemon. Its methods may be called from any
// number of goroutines. Close it when done.
type Client struct {
	conn     *grpc.ClientConn
	stub     pb.SessionRegistryClient
	metadata []string
	timeout  time.Duration
	retry    *RetryOptions
	onRetry  func(RetryEvent)

	mu      sync.Mutex
	closed  bool
	done    chan struct{}
	watches map[watcher]struct{}
	leases  map[*Lease]struct{}
}

// New makes a client of the daemon at address ("host:port"). It does not
// wait for a connection: the first call makes one. It fails only on bad
// options.
func New(address string, opts ...Option) (*Client, error) {
	retry := DefaultRetry
	o := config{timeout: DefaultTimeout, retry: &retry}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout < 0 {
		return nil, fmt.Errorf("sessionregistry: timeout must be >= 0; got %v", o.timeout)
	}
	if r := o.retry; r != nil && (r.MaxAttempts < 1 || r.InitialBackoff < 0 || r.MaxBackoff < 0) {
		return nil, fmt.Errorf("sessionregistry: retry needs MaxAttempts >= 1 and backoffs >= 0; got %+v", *r)
	}
	dial := []grpc.DialOption{grpc.WithInsecure()}
	if o.creds != nil {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(o.creds)}
	}
	conn, err := grpc.Dial(address, append(dial, o.dial...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:     conn,
		stub:     pb.NewSessionRegistryClient(conn),
		metadata: o.metadata,
		timeout:  o.timeout,
		retry:    o.retry,
		onRetry:  o.onRetry,
		done:     make(chan struct{}),
		watches:  map[watcher]struct{}{},
		leases:   map[*Lease]struct{}{},
	}, nil
}

// Stub is the generated client on the same connection, for what this
// package does not wrap. Its calls get neither the client's metadata nor
// its deadline.
func (c *Client) Stub() pb.SessionRegistryClient { return c.stub }

// Close closes the connection. Later calls fail with CANCELLED; open
// watches and tables watches end (Next returns io.EOF) and leases stop
// renewing (their sessions expire after their ttl; no OnLost). Idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	watches, leases := c.watches, c.leases
	c.watches, c.leases = nil, nil
	c.mu.Unlock()
	for w := range watches {
		w.close()
	}
	for l := range leases {
		l.halt()
	}
	return c.conn.Close()
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// CreateTable creates a table, or returns the existing one with created
// false. maxSessions 0 means the daemon's default.
func (c *Client) CreateTable(ctx context.Context, table string, maxSessions uint32) (t *pb.Table, created bool, err error) {
	var res *pb.CreateTableResponse
	err = c.unary(ctx, func(ctx context.Context) (err error) {
		res, err = c.stub.CreateTable(ctx, &pb.CreateTableRequest{Table: table, MaxSessions: maxSessions})
		return err
	})
	if err != nil {
		return nil, false, err
	}
	t, err = required(res.GetTable(), "table")
	return t, res.GetCreated(), err
}

// GetTable returns the table ("" means default) with its session count and revision.
func (c *Client) GetTable(ctx context.Context, table string) (*pb.Table, error) {
	var res *pb.GetTableResponse
	err := c.unary(ctx, func(ctx context.Context) (err error) {
		res, err = c.stub.GetTable(ctx, &pb.GetTableRequest{Table: table})
		return err
	})
	if err != nil {
		return nil, err
	}
	return required(res.GetTable(), "table")
}

// ListTables returns every table, in name order.
func (c *Client) ListTables(ctx context.Context) ([]*pb.Table, error) {
	var res *pb.ListTablesResponse
	err := c.unary(ctx, func(ctx context.Context) (err error) {
		res, err = c.stub.ListTables(ctx, &pb.ListTablesRequest{})
		return err
	})
	return res.GetTables(), err
}

// ServerInfo returns the daemon's version, store kind and whether its
// store serves now. It reads no table, so it answers while etcd is away.
func (c *Client) ServerInfo(ctx context.Context) (*pb.GetServerInfoResponse, error) {
	var res *pb.GetServerInfoResponse
	err := c.unary(ctx, func(ctx context.Context) (err error) {
		res, err = c.stub.GetServerInfo(ctx, &pb.GetServerInfoRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// DeleteTable deletes a table; one that still holds sessions needs force.
func (c *Client) DeleteTable(ctx context.Context, table string, force bool) error {
	return c.unary(ctx, func(ctx context.Context) error {
		_, err := c.stub.DeleteTable(ctx, &pb.DeleteTableRequest{Table: table, Force: force})
		return err
	})
}

// RegisterInput is a session to register.
type RegisterInput struct {
	// Table is the table to register in; "" means default.
	Table string
	// ProjectPath is the project's absolute POSIX path; required.
	ProjectPath string
	// ID is the session's id; "" lets the server make a UUIDv4.
	ID string
	// Name is a display name; "" derives it from the project path.
	Name     string
	Metadata map[string]string
	// TTL is how long the session lives without a keep-alive; 0 means forever, else 1 s to 24 h.
	TTL time.Duration
	// RequestID is the idempotency key: 1-128 characters of [A-Za-z0-9._:-].
	// "": with retries on, a random UUID per call (kept across its attempts); without, none.
	RequestID string
}

// Register registers a session and returns it as stored (normalized, id
// and times filled in). It is retried on UNAVAILABLE with one request id, so
// a retry whose earlier attempt did register returns that session rather
// than failing with SESSION_EXISTS or PROJECT_ALREADY_OPEN.
func (c *Client) Register(ctx context.Context, in RegisterInput) (*pb.Session, error) {
	req := &pb.RegisterRequest{
		Table: in.Table,
		Session: &pb.Session{
			Id: in.ID, Name: in.Name, ProjectPath: in.ProjectPath, Metadata: copyMap(in.Metadata), Ttl: ttl(in.TTL),
		},
		RequestId: c.requestID(in.RequestID),
	}
	var res *pb.RegisterResponse
	err := c.withRetries(ctx, "Register", func(ctx context.Context) (err error) {
		res, err = c.stub.Register(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return required(res.GetSession(), "session")
}

// LookupKey is what Lookup finds a session by; make one with ByID, ByProjectPath or ByName.
type LookupKey struct {
	by, value string
}

// ByID looks a session up by its id.
func ByID(id string) LookupKey { return LookupKey{"id", id} }

// ByProjectPath looks a session up by its project path, normalized before matching.
func ByProjectPath(path string) LookupKey { return LookupKey{"project_path", path} }

// ByName looks a session up by its name, matched exactly; the oldest such session wins.
func ByName(name string) LookupKey { return LookupKey{"name", name} }

// Lookup finds one session of a table ("" means default) by key.
func (c *Client) Lookup(ctx context.Context, table string, key LookupKey) (*pb.Session, error) {
	req := &pb.LookupRequest{Table: table}
	switch key.by {
	case "id":
		req.Key = &pb.LookupRequest_Id{Id: key.value}
	case "project_path":
		req.Key = &pb.LookupRequest_ProjectPath{ProjectPath: key.value}
	case "name":
		req.Key = &pb.LookupRequest_Name{Name: key.value}
	default:
		return nil, errors.New("sessionregistry: Lookup needs a key made by ByID, ByProjectPath or ByName")
	}
	var res *pb.LookupResponse
	err := c.unary(ctx, func(ctx context.Context) (err error) {
		res, err = c.stub.Lookup(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return required(res.GetSession(), "session")
}

// ListPage returns one page of a table's sessions, oldest first, with the
// revision it was read at. pageSize 0 means 100; pageToken "" the first page.
func (c *Client) ListPage(ctx context.Context, table string, pageSize int32, pageToken string) (*pb.ListResponse, error) {
	var res *pb.ListResponse
	err := c.unary(ctx, func(ctx context.Context) (err error) {
		res, err = c.stub.List(ctx, &pb.ListRequest{Table: table, PageSize: pageSize, PageToken: pageToken})
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// List iterates over every session of a table, fetching pages of pageSize
// as the iteration needs them:
//
//	it := client.List(ctx, "", 0)
//	for it.Next() {
//		s := it.Session()
//	}
//	if err := it.Err(); err != nil { ... }
func (c *Client) List(ctx context.Context, table string, pageSize int32) *SessionIterator {
	return &SessionIterator{client: c, ctx: ctx, table: table, pageSize: pageSize}
}

// SessionIterator is what List returns. Use it from one goroutine.
type SessionIterator struct {
	client   *Client
	ctx      context.Context
	table    string
	pageSize int32
	token    string
	page     []*pb.Session
	current  *pb.Session
	started  bool
	err      error
}

// Next advances to the next session; false at the end or on an error (see Err).
func (it *SessionIterator) Next() bool {
	for len(it.page) == 0 {
		if it.err != nil || (it.started && it.token == "") {
			it.current = nil
			return false
		}
		res, err := it.client.ListPage(it.ctx, it.table, it.pageSize, it.token)
		if err != nil {
			it.err, it.current = err, nil
			return false
		}
		it.started, it.token, it.page = true, res.GetNextPageToken(), res.GetSessions()
	}
	it.current, it.page = it.page[0], it.page[1:]
	return true
}

// Session is the session Next advanced to.
func (it *SessionIterator) Session() *pb.Session { return it.current }

// Err is the error that ended the iteration; nil if it ran to the end.
func (it *SessionIterator) Err() error { return it.err }

// The field paths of UpdateInput.UpdateMask, as on the wire.
const (
	PathName        = "name"
	PathProjectPath = "project_path"
	PathMetadata    = "metadata"
	PathTTL         = "ttl"
)

// UpdateInput changes some fields of a session. Fields left nil are not
// changed unless UpdateMask names them.
type UpdateInput struct {
	// Table is the table holding the session; "" means default.
	Table string
	// ID is the session's id; required.
	ID string
	// Name, if not nil, is the new name; "" derives it again from the project path.
	Name *string
	// ProjectPath, if not nil, is the new project path.
	ProjectPath *string
	// Metadata, if not nil, replaces the metadata; an empty non-nil map clears it.
	Metadata map[string]string
	// TTL, if not nil, is the new ttl; 0 clears it.
	TTL *time.Duration
	// UpdateMask names the fields to change (PathName, ...); default the
	// paths of the fields above that are not nil.
	UpdateMask []string
	// ExpectedRevision, if not 0, makes the update happen only at that
	// revision of the session (its etag); else a RevisionMismatchError.
	ExpectedRevision uint64
	// TableUID, if not "", makes the update happen only while the table's
	// history is this one: pass the session's TableUid with
	// ExpectedRevision, so that an etag from another history never matches
	// by chance. A mismatch is a TableUIDMismatchError.
	TableUID string
	// RequestID is the idempotency key; "" as in RegisterInput.RequestID.
	RequestID string
}

// Ptr returns a pointer to v, for UpdateInput's optional fields:
// UpdateInput{ID: id, Name: sessionregistry.Ptr("new name")}.
func Ptr[T any](v T) *T { return &v }

// Update changes the given fields of a session and returns it. It is
// retried on UNAVAILABLE with one request id, so a retry whose earlier
// attempt did apply returns that result rather than REVISION_MISMATCH.
func (c *Client) Update(ctx context.Context, in UpdateInput) (*pb.Session, error) {
	s := &pb.Session{Id: in.ID, Metadata: copyMap(in.Metadata)}
	mask := in.UpdateMask
	implied := mask == nil
	if in.Name != nil {
		s.Name = *in.Name
		mask = imply(mask, implied, PathName)
	}
	if in.ProjectPath != nil {
		s.ProjectPath = *in.ProjectPath
		mask = imply(mask, implied, PathProjectPath)
	}
	if in.Metadata != nil {
		mask = imply(mask, implied, PathMetadata)
	}
	if in.TTL != nil {
		s.Ttl = ttl(*in.TTL)
		mask = imply(mask, implied, PathTTL)
	}
	req := &pb.UpdateRequest{
		Table:            in.Table,
		Session:          s,
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: mask},
		ExpectedRevision: in.ExpectedRevision,
		TableUid:         in.TableUID,
		RequestId:        c.requestID(in.RequestID),
	}
	var res *pb.UpdateResponse
	err := c.withRetries(ctx, "Update", func(ctx context.Context) (err error) {
		res, err = c.stub.Update(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return required(res.GetSession(), "session")
}

func imply(mask []string, implied bool, path string) []string {
	if implied {
		return append(mask, path)
	}
	return mask
}

// RemoveInput names a session to remove.
type RemoveInput struct {
	// Table is the table holding the session; "" means default.
	Table string
	// ID is the session's id; required.
	ID string
	// ExpectedRevision and TableUID make the removal conditional, as in UpdateInput.
	ExpectedRevision uint64
	TableUID         string
	// AllowMissing makes removing an unknown id succeed (with a nil session) instead of a SessionNotFoundError.
	AllowMissing bool
	// RequestID is the idempotency key; "" as in RegisterInput.RequestID.
	RequestID string
}

// Remove removes a session and returns it as it was; nil if it was missing
// and AllowMissing was set. It is retried on UNAVAILABLE with one request id.
func (c *Client) Remove(ctx context.Context, in RemoveInput) (*pb.Session, error) {
	req := &pb.RemoveRequest{
		Table:            in.Table,
		Id:               in.ID,
		ExpectedRevision: in.ExpectedRevision,
		TableUid:         in.TableUID,
		AllowMissing:     in.AllowMissing,
		RequestId:        c.requestID(in.RequestID),
	}
	var res *pb.RemoveResponse
	err := c.withRetries(ctx, "Remove", func(ctx context.Context) (err error) {
		res, err = c.stub.Remove(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return res.GetSession(), nil
}

// KeepAlive pushes a session's expire time to now + its ttl and returns
// the session. One without ttl comes back unchanged; an expired one is a
// SessionNotFoundError. RegisterWithKeepAlive runs the usual loop.
func (c *Client) KeepAlive(ctx context.Context, table, id string) (*pb.Session, error) {
	var res *pb.KeepAliveResponse
	err := c.unary(ctx, func(ctx context.Context) (err error) {
		res, err = c.stub.KeepAlive(ctx, &pb.KeepAliveRequest{Table: table, Id: id})
		return err
	})
	if err != nil {
		return nil, err
	}
	return required(res.GetSession(), "session")
}

// callContext carries the client's metadata, and its deadline when with is true.
func (c *Client) callContext(ctx context.Context, withDeadline bool) (context.Context, context.CancelFunc) {
	if len(c.metadata) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, c.metadata...)
	}
	if withDeadline && c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// unary makes one call of call with the client's metadata and deadline.
func (c *Client) unary(ctx context.Context, call func(context.Context) error) error {
	ctx, cancel := c.callContext(ctx, true)
	defer cancel()
	return c.once(ctx, call)
}

func (c *Client) once(ctx context.Context, call func(context.Context) error) error {
	if c.isClosed() {
		return closedError()
	}
	return FromError(call(ctx))
}

// withRetries runs call (attempt 1, 2, ...) until it succeeds, fails with
// anything but UNAVAILABLE, runs out of attempts, or the next pause would
// pass the deadline, which is one for all attempts.
func (c *Client) withRetries(ctx context.Context, method string, call func(context.Context) error) error {
	ctx, cancel := c.callContext(ctx, true)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, call)
		r := c.retry
		if err == nil || r == nil || attempt >= r.MaxAttempts || codeOf(err) != codes.Unavailable || c.isClosed() {
			return err
		}
		step := r.InitialBackoff << (attempt - 1)
		if step > r.MaxBackoff || step <= 0 {
			step = r.MaxBackoff
		}
		pause := jitter(step)
		if deadline, ok := ctx.Deadline(); ok && !time.Now().Add(pause).Before(deadline) {
			return err
		}
		if c.onRetry != nil {
			c.onRetry(RetryEvent{Method: method, Attempt: attempt, MaxAttempts: r.MaxAttempts, Err: err, Delay: pause})
		}
		timer := time.NewTimer(pause)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-c.done:
			timer.Stop()
			return err
		}
	}
}

// requestID is the caller's id, else a fresh one when retries are on, else none.
func (c *Client) requestID(given string) string {
	if given != "" || c.retry == nil {
		return given
	}
	return newUUID()
}

// jitter is "equal jitter": half of d fixed, half random, so that clients
// spread their retries out. Random from crypto/rand: math/rand's default
// source starts alike in every process before Go 1.20.
func jitter(d time.Duration) time.Duration {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil || d <= 0 {
		return d
	}
	return d/2 + time.Duration(binary.LittleEndian.Uint64(b[:])%uint64(d/2+1))
}

// newUUID makes a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("sessionregistry: no randomness for a request id: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func codeOf(err error) codes.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return codes.Unknown
}

func ttl(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// required returns v, which the daemon always fills; a response without it
// is a broken server, reported as INTERNAL rather than as a nil message.
func required[T any](v *T, field string) (*T, error) {
	if v == nil {
		return nil, &Error{Code: codes.Internal, Message: "response is missing " + field, Metadata: map[string]string{}}
	}
	return v, nil
}
