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
	resuming[*pb.WatchResponse]
	table string

	// The consumer's goroutine only.
	nextStart     uint64
	resyncPending bool

	// Under resuming's mu.
	last uint64
	uid  string
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
	w := &WatchStream{
		resuming: newResuming[*pb.WatchResponse](c, ctx, o.AutoResume, o.Backoff),
		table:    o.Table, nextStart: o.StartRevision, uid: o.TableUID,
	}
	w.openCall, w.recoverable = w.openWatch, w.recover
	return w
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
func (w *WatchStream) LastError() error { return w.lastErr() }

// Close cancels the call; Next then returns io.EOF. Idempotent.
func (w *WatchStream) Close() { w.close() }

// Next returns the next item. It blocks until there is one or the watch
// ends: io.EOF when it was closed (or, without AutoResume, when the daemon
// ended it without an error), else the error, typed as FromError makes it.
// After the end it returns the same error again.
func (w *WatchStream) Next() (*WatchItem, error) {
	var item *WatchItem
	err := w.next(func(m *pb.WatchResponse) (bool, error) {
		var err error
		if item, err = toItem(m, w.resyncPending); item == nil || err != nil {
			return false, err
		}
		w.resyncPending, w.nextStart = false, item.Revision+1
		w.mu.Lock()
		w.last, w.uid = item.Revision, item.TableUID
		w.mu.Unlock()
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return item, nil
}

// openWatch starts a call from nextStart, with the history that revision belongs to.
func (w *WatchStream) openWatch(ctx context.Context) (receiver[*pb.WatchResponse], error) {
	uid := ""
	if w.nextStart > 0 {
		w.mu.Lock()
		uid = w.uid
		w.mu.Unlock()
	}
	return w.client.stub.Watch(ctx, &pb.WatchRequest{Table: w.table, StartRevision: w.nextStart, TableUid: uid})
}

// recover is AutoResume's rule for a watch: after a lost position the next
// call starts over with a snapshot marked Resync.
func (w *WatchStream) recover(err error) bool {
	switch recovery(err) {
	case "resync":
		w.resyncPending, w.nextStart = true, 0
		return true
	case "retry":
		return true
	default:
		return false
	}
}

// recovery is what AutoResume does after err: "resync", "retry" or "return".
func recovery(err error) string {
	var compacted *RevisionCompactedError
	var history *HistoryChangedError
	var tooSlow *WatcherTooSlowError
	switch {
	// The position is gone from the history, or belongs to another one: only a new snapshot is the truth.
	case errors.As(err, &compacted), errors.As(err, &history):
		return "resync"
	// The daemon delivered every event before resume_revision, which is
	// where the next call starts: nothing is lost, and no snapshot is needed
	// unless that revision has been compacted meanwhile (REVISION_COMPACTED next).
	case errors.As(err, &tooSlow):
		return "retry"
	case reconnectable(err):
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
