// A registered session kept alive by periodic KeepAlive calls, like an etcd
// lease. Renewal runs on a goroutine of its own; when the process exits the
// session simply expires after its ttl.

package sessionregistry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/session-registry/session-registry/clients/go/gen/sessionregistry/v1"
)

// LeaseOptions says how a lease renews.
type LeaseOptions struct {
	// Interval is the time between keep-alives; default a third of the ttl.
	Interval time.Duration
	// OnRenewed is called after each keep-alive, on the lease's goroutine.
	OnRenewed func(*pb.Session)
	// OnLost is called once, on the lease's goroutine, if the session is lost.
	OnLost func(error)
}

// Lease keeps one session alive. Its methods may be called from any goroutine.
type Lease struct {
	client   *Client
	table    string
	interval time.Duration
	opts     LeaseOptions
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}

	mu       sync.Mutex
	session  *pb.Session
	renewals int
	stopped  bool
	lost     error
}

// RegisterWithKeepAlive registers a session with in.TTL (at least 1 s) and
// keeps it alive until the lease is closed or removed, or the session is
// lost. ctx bounds the registration only. It fails as Register does, and,
// before any call, on a ttl under 1 s or an Interval not between 0 and the ttl.
func (c *Client) RegisterWithKeepAlive(ctx context.Context, in RegisterInput, o LeaseOptions) (*Lease, error) {
	if in.TTL < time.Second {
		return nil, fmt.Errorf("sessionregistry: RegisterWithKeepAlive needs a TTL of at least 1s; got %v", in.TTL)
	}
	if o.Interval == 0 {
		o.Interval = in.TTL / 3
	}
	if o.Interval <= 0 || o.Interval >= in.TTL {
		return nil, fmt.Errorf("sessionregistry: the keep-alive interval must be > 0 and < the TTL; got %v", o.Interval)
	}
	s, err := c.Register(ctx, in)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Lease{
		client: c, table: in.Table, interval: o.Interval, opts: o, ctx: lctx, cancel: cancel,
		done: make(chan struct{}), session: s,
	}
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.leases[l] = struct{}{}
	}
	c.mu.Unlock()
	if closed { // closed while registering: the lease must not outlive the client
		l.halt()
		close(l.done)
		return l, nil
	}
	go l.run()
	return l, nil
}

// Session is the session as of the latest keep-alive (or the registration).
func (l *Lease) Session() *pb.Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.session
}

// ID is the session's id.
func (l *Lease) ID() string { return l.Session().GetId() }

// Table is the session's table, as given to RegisterWithKeepAlive.
func (l *Lease) Table() string { return l.table }

// Renewals counts the keep-alives that succeeded.
func (l *Lease) Renewals() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewals
}

// Done is closed once the lease has stopped: closed, removed, or lost.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err is the error that lost the session: a SessionNotFoundError when
// someone removed it or it expired, any error a later keep-alive would not
// get past, or the last transient one once the expire time had passed.
// nil while the lease runs and after Close or Remove.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Close stops renewing; the session stays until its ttl runs out. It does
// not wait for a keep-alive in flight (which it cancels); Done does.
// Idempotent; no OnLost.
func (l *Lease) Close() { l.halt() }

// Remove stops renewing and removes the session (a missing one is fine);
// it returns the removed session, or nil.
func (l *Lease) Remove(ctx context.Context) (*pb.Session, error) {
	l.halt()
	return l.client.Remove(ctx, RemoveInput{Table: l.table, ID: l.ID(), AllowMissing: true})
}

// halt stops the lease without a loss; false if it had stopped already.
func (l *Lease) halt() bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.stopped = true
	l.mu.Unlock()
	l.cancel()
	l.client.forgetLease(l)
	return true
}

func (c *Client) forgetLease(l *Lease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.leases, l)
}

// One keep-alive at a time: the next waits until this one is over.
func (l *Lease) run() {
	defer close(l.done)
	timer := time.NewTimer(l.interval)
	defer timer.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-timer.C:
		}
		s, err := l.client.KeepAlive(l.ctx, l.table, l.ID())
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			if transient(err) && !l.pastExpiry() {
				// Try again soon: the session is not lost until its expire time.
				timer.Reset(minDuration(l.interval, 200*time.Millisecond+l.interval/10))
				continue
			}
			l.lose(err)
			return
		}
		l.mu.Lock()
		l.session = s
		l.renewals++
		l.mu.Unlock()
		if l.opts.OnRenewed != nil {
			l.opts.OnRenewed(s)
		}
		timer.Reset(l.interval)
	}
}

func (l *Lease) lose(err error) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped, l.lost = true, err
	l.mu.Unlock()
	l.cancel()
	l.client.forgetLease(l)
	if l.opts.OnLost != nil {
		l.opts.OnLost(err)
	}
}

// pastExpiry says whether the server has surely dropped the session by now (by our clock).
func (l *Lease) pastExpiry() bool {
	e := l.Session().GetExpireTime()
	return e != nil && !time.Now().Before(e.AsTime())
}

// transient says whether a later keep-alive may get past err; anything else
// (a SessionNotFoundError above all) means the session cannot be kept.
func transient(err error) bool {
	switch codeOf(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Internal, codes.Unknown,
		codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
