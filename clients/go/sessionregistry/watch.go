// Watch as an iterator. A WatchStream owns at most one gRPC Watch call at a
// time; with AutoResume it opens the next one itself, from where the
// consumer is, so the consumer sees one ordered feed across reconnects:
// transient failures and WATCHER_TOO_SLOW resume from LastRevision + 1 with
// the table_uid of that revision, and a lost position (compacted history,
// or a table whose history started over: a restarted daemon, a table made
// again, a wiped etcd) becomes a fresh snapshot marked Resync.
//
// Back-pressure: gRPC reads the next message off the connection only as
// Next asks for it, so messages not yet taken wait in the HTTP/2 window, and
// a consumer that falls far behind is ended by the daemon (WATCHER_TOO_SLOW)
// instead of making this process buffer without bound.

package sessionregistry

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/session-registry/session-registry/clients/go/gen/sessionregistry/v1"
)

// ItemKind tells a snapshot from an event.
type ItemKind int

const (
	// KindSnapshot is every session of the table at one revision.
	KindSnapshot ItemKind = iota + 1
	// KindEvent is one change to one session.
	KindEvent
)

// WatchItem is one item of a watch: the snapshot (first, when watching
// from 0 or after a resync) or one event.
type WatchItem struct {
	Kind ItemKind
	// Revision is the table revision of the snapshot or the change.
	Revision uint64
	// TableUID is the history Revision belongs to (see Table.table_uid).
	TableUID string
	// Sessions (snapshots) are every session in the table, oldest first.
	Sessions []*pb.Session
	// Resync (snapshots, with AutoResume) says that this snapshot replaces
	// the consumer's state: drop every session you held and keep these.
	Resync bool
	// Type (events) is what happened.
	Type pb.EventType
	// Session (events) is the session after the change; for REMOVED and EXPIRED, its last state.
	Session *pb.Session
}

// Backoff is the pause between reconnects: Initial, doubling up to Max, with jitter.
type Backoff struct {
	Initial, Max time.Duration
}

// DefaultBackoff is the pause between reconnects unless WatchOptions.Backoff says otherwise.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// WatchOptions says what to watch and how.
type WatchOptions struct {
	// Table is the table to watch; "" means default.
	Table string
	// StartRevision 0 (the default) starts with a snapshot, then events. N > 0:
	// every event with revision >= N, no snapshot.
	StartRevision uint64
	// TableUID goes with StartRevision N > 0: the history N belongs to (a
	// position kept from an earlier stream's LastRevision + 1 and TableUID).
	// If the table's history is another one now, the watch fails with a
	// TableUIDMismatchError, or resyncs with AutoResume.
	TableUID string
	// AutoResume reconnects after transient failures and resyncs after a
	// lost position instead of returning the error.
	AutoResume bool
	// Backoff is the pause between reconnects; zero fields take DefaultBackoff's.
	Backoff Backoff
}

// WatchStream is a live watch: call Next until it returns an error. Use it
// from one goroutine; Close may be called from any.
type WatchStream struct {
	client     *Client
	ctx        context.Context
	table      string
	autoResume bool
	backoff    Backoff

	// The consumer's goroutine only.
	nextStart     uint64
	resyncPending bool
	attempt       int
	stream        pb.SessionRegistry_WatchClient
	final         error

	mu        sync.Mutex
	stopped   bool
	stop      chan struct{}
	cancel    context.CancelFunc
	last      uint64
	uid       string
	lastError error
	tracked   bool
}

// Watch streams a table's changes. The call starts with the first Next,
// has no deadline and carries the client's metadata. Without AutoResume
// every error ends it. Close, or closing the client, ends it cleanly (Next
// returns io.EOF); cancelling ctx ends it with ctx's error.
//
//	w := client.Watch(ctx, sessionregistry.WatchOptions{AutoResume: true})
//	defer w.Close()
//	for {
//		item, err := w.Next()
//		if err != nil { ... }
//	}
func (c *Client) Watch(ctx context.Context, o WatchOptions) *WatchStream {
	b := o.Backoff
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return &WatchStream{
		client: c, ctx: ctx, table: o.Table, autoResume: o.AutoResume, backoff: b,
		nextStart: o.StartRevision, uid: o.TableUID, stop: make(chan struct{}),
	}
}

// LastRevision is the revision of the last item Next returned; 0 before any.
func (w *WatchStream) LastRevision() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// TableUID is the history LastRevision belongs to; WatchOptions.TableUID
// before any item. Keep both to resume later.
func (w *WatchStream) TableUID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.uid
}

// LastError is the last error AutoResume recovered from; nil if none.
func (w *WatchStream) LastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastError
}

// Close cancels the call; Next then returns io.EOF. Idempotent.
func (w *WatchStream) Close() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	close(w.stop)
	cancel := w.cancel
	tracked := w.tracked
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if tracked {
		w.client.forgetWatch(w)
	}
}

func (w *WatchStream) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// Next returns the next item. It blocks until there is one or the watch
// ends: io.EOF when it was closed (or, without AutoResume, when the daemon
// ended it without an error), else the error, typed as FromError makes it.
// After the end it returns the same error again.
func (w *WatchStream) Next() (*WatchItem, error) {
	for {
		if w.final != nil {
			return nil, w.final
		}
		if w.isStopped() {
			return nil, w.end(io.EOF)
		}
		if w.stream == nil {
			if err := w.open(); err != nil {
				return nil, w.end(err)
			}
		}
		if w.stream != nil {
			msg, err := w.stream.Recv()
			if err == nil {
				item, err := toItem(msg, w.resyncPending)
				if err != nil {
					return nil, w.end(err)
				}
				if item == nil {
					continue // a message kind this version does not know
				}
				w.attempt, w.resyncPending, w.nextStart = 0, false, item.Revision+1
				w.mu.Lock()
				w.last, w.uid = item.Revision, item.TableUID
				w.mu.Unlock()
				return item, nil
			}
			w.dropCall()
			if w.isStopped() {
				return nil, w.end(io.EOF)
			}
			if ctxErr := w.ctx.Err(); ctxErr != nil {
				return nil, w.end(ctxErr)
			}
			var failure error
			if err != io.EOF {
				failure = FromError(err)
			}
			if !w.autoResume {
				if failure == nil {
					failure = io.EOF // the daemon ended the stream with OK
				}
				return nil, w.end(failure)
			}
			if failure != nil {
				switch recovery(failure) {
				case "return":
					return nil, w.end(failure)
				case "resync":
					w.resyncPending, w.nextStart = true, 0
				}
				w.mu.Lock()
				w.lastError = failure
				w.mu.Unlock()
			}
		}
		if err := w.sleep(w.backoffDelay()); err != nil {
			return nil, w.end(err)
		}
	}
}

// open starts a call from nextStart. An error it returns ends the watch; a
// call that fails to start for a reason worth retrying leaves w.stream nil
// and records the failure as a Recv error would.
func (w *WatchStream) open() error {
	// A watch that was running when the client closed ends cleanly; one
	// started on a closed client fails as unary calls do.
	if !w.track() {
		return closedError()
	}
	if w.client.isClosed() {
		return io.EOF
	}
	ctx, cancel := w.client.callContext(w.ctx, false)
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		cancel()
		return io.EOF
	}
	w.cancel = cancel
	uid := ""
	if w.nextStart > 0 {
		uid = w.uid
	}
	w.mu.Unlock()
	stream, err := w.client.stub.Watch(ctx, &pb.WatchRequest{Table: w.table, StartRevision: w.nextStart, TableUid: uid})
	if err != nil {
		w.dropCall()
		if w.isStopped() {
			return io.EOF
		}
		if ctxErr := w.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		failure := FromError(err)
		if !w.autoResume || recovery(failure) == "return" {
			return failure
		}
		w.mu.Lock()
		w.lastError = failure
		w.mu.Unlock()
		return nil
	}
	w.stream = stream
	return nil
}

// track registers the stream with its client, so that Client.Close ends
// it; false if the client closed meanwhile.
func (w *WatchStream) track() bool {
	w.mu.Lock()
	tracked := w.tracked
	w.tracked = true
	w.mu.Unlock()
	if tracked {
		return true
	}
	c := w.client
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.watches[w] = struct{}{}
	return true
}

func (c *Client) forgetWatch(w *WatchStream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watches, w)
}

func (w *WatchStream) dropCall() {
	w.stream = nil
	w.mu.Lock()
	cancel := w.cancel
	w.cancel = nil
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// end makes err the watch's last word and lets go of the call and the client.
func (w *WatchStream) end(err error) error {
	w.final = err
	w.dropCall()
	w.mu.Lock()
	tracked := w.tracked
	w.mu.Unlock()
	if tracked {
		w.client.forgetWatch(w)
	}
	return err
}

// backoffDelay is exponential, with jitter.
func (w *WatchStream) backoffDelay() time.Duration {
	d := w.backoff.Initial << w.attempt
	if d > w.backoff.Max || d <= 0 {
		d = w.backoff.Max
	}
	if w.attempt < 30 {
		w.attempt++
	}
	return jitter(d)
}

// sleep waits d; it returns io.EOF if the watch is closed meanwhile and
// ctx's error if ctx is done.
func (w *WatchStream) sleep(d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-w.stop:
		return io.EOF
	case <-w.client.done:
		return io.EOF
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

// recovery is what AutoResume does after err: "resync", "retry" or "return".
func recovery(err error) string {
	var compacted *RevisionCompactedError
	var history *HistoryChangedError
	var tooSlow *WatcherTooSlowError
	var limit *WatcherLimitReachedError
	switch code := codeOf(err); {
	// The position is gone from the history, or belongs to another one: only a new snapshot is the truth.
	case errors.As(err, &compacted), errors.As(err, &history):
		return "resync"
	// The daemon delivered every event before resume_revision, which is
	// where the next call starts: nothing is lost, and no snapshot is needed
	// unless that revision has been compacted meanwhile (REVISION_COMPACTED next).
	case errors.As(err, &tooSlow):
		return "retry"
	// The watcher limit is worth waiting out (other watchers end); any other
	// exhaustion would fail the same way on every reconnect.
	case code == codes.ResourceExhausted:
		if errors.As(err, &limit) {
			return "retry"
		}
		return "return"
	case code == codes.Unavailable, code == codes.Canceled, code == codes.Internal, code == codes.Unknown,
		code == codes.DeadlineExceeded, code == codes.Aborted:
		return "retry"
	default:
		return "return"
	}
}

func toItem(m *pb.WatchResponse, resync bool) (*WatchItem, error) {
	switch kind := m.GetKind().(type) {
	case *pb.WatchResponse_Snapshot:
		return &WatchItem{
			Kind: KindSnapshot, Revision: m.GetRevision(), TableUID: m.GetTableUid(),
			Sessions: kind.Snapshot.GetSessions(), Resync: resync,
		}, nil
	case *pb.WatchResponse_Event:
		s := kind.Event.GetSession()
		if s == nil {
			return nil, &Error{Code: codes.Internal, Message: "watch event is missing session", Metadata: map[string]string{}}
		}
		return &WatchItem{
			Kind: KindEvent, Revision: m.GetRevision(), TableUID: m.GetTableUid(), Type: kind.Event.GetType(), Session: s,
		}, nil
	default:
		return nil, nil
	}
}
