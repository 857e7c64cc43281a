// WatchTables as an iterator: every table with its session count, kept
// current. Each update is the whole list as it stands after one message,
// with what that message changed, so a consumer may redraw everything or
// apply the change. With AutoResume a dropped call is opened again and its
// snapshot replaces what the stream held: the update says so (Snapshot)
// and lists as deleted every table that went meanwhile.

package sessionregistry

import (
	"context"
	"sort"

	pb "github.com/session-registry/session-registry/clients/go/gen/sessionregistry/v1"
)

// TablesUpdate is one item of a tables watch.
type TablesUpdate struct {
	// Tables is every table now, in name order.
	Tables []*pb.Table
	// Changed is the tables this update created or changed (on a snapshot: every table).
	Changed []*pb.Table
	// Deleted is the names of the tables this update deleted.
	Deleted []string
	// Snapshot is true for the first update and, with AutoResume, for the
	// first after a reconnect: Tables replaces all you held.
	Snapshot bool
}

// TablesWatchOptions says how to watch the tables.
type TablesWatchOptions struct {
	// AutoResume reconnects after transient failures instead of returning the error.
	AutoResume bool
	// Backoff is the pause between reconnects; zero fields take DefaultBackoff's.
	Backoff Backoff
}

// TablesWatchStream is a live tables watch: call Next until it returns an
// error. Use it from one goroutine; Close may be called from any.
type TablesWatchStream struct {
	resuming[*pb.WatchTablesResponse]

	// The consumer's goroutine only: the tables of the last update, by name.
	held map[string]*pb.Table
}

// WatchTables streams every table with its session count: first a
// snapshot, then the whole list after each change. A reader that falls
// behind gets fewer updates, each with the latest state, and is never ended
// as too slow; to see every change to one table's sessions, Watch that
// table. A token restricted to some tables sees those only. The call
// starts with the first Next, has no deadline and carries the client's
// metadata. Without AutoResume every error ends it. Close, or closing the
// client, ends it cleanly (Next returns io.EOF); cancelling ctx ends it
// with ctx's error.
func (c *Client) WatchTables(ctx context.Context, o TablesWatchOptions) *TablesWatchStream {
	w := &TablesWatchStream{
		resuming: newResuming[*pb.WatchTablesResponse](c, ctx, o.AutoResume, o.Backoff),
		held:     map[string]*pb.Table{},
	}
	w.openCall = func(ctx context.Context) (receiver[*pb.WatchTablesResponse], error) {
		return w.client.stub.WatchTables(ctx, &pb.WatchTablesRequest{})
	}
	// There is no position to lose: every new call starts with a snapshot.
	w.recoverable = reconnectable
	return w
}

// LastError is the last error AutoResume recovered from; nil if none.
func (w *TablesWatchStream) LastError() error { return w.lastErr() }

// Close cancels the call; Next then returns io.EOF. Idempotent.
func (w *TablesWatchStream) Close() { w.close() }

// Next returns the next update. It blocks until there is one or the watch
// ends: io.EOF when it was closed (or, without AutoResume, when the daemon
// ended it without an error), else the error, typed as FromError makes it.
// After the end it returns the same error again.
func (w *TablesWatchStream) Next() (*TablesUpdate, error) {
	var update *TablesUpdate
	err := w.next(func(m *pb.WatchTablesResponse) (bool, error) {
		update = w.accept(m)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return update, nil
}

// accept applies one message to the tables held and says what it did. A
// snapshot replaces them: what it does not list is deleted, the rest
// overwritten.
func (w *TablesWatchStream) accept(m *pb.WatchTablesResponse) *TablesUpdate {
	deleted := m.GetDeletedTables()
	if m.GetSnapshot() {
		listed := make(map[string]bool, len(m.GetTables()))
		for _, t := range m.GetTables() {
			listed[t.GetName()] = true
		}
		deleted = nil
		for name := range w.held {
			if !listed[name] {
				deleted = append(deleted, name)
			}
		}
		sort.Strings(deleted)
	}
	for _, name := range deleted {
		delete(w.held, name)
	}
	for _, t := range m.GetTables() {
		w.held[t.GetName()] = t
	}
	tables := make([]*pb.Table, 0, len(w.held))
	for _, t := range w.held {
		tables = append(tables, t)
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].GetName() < tables[j].GetName() })
	return &TablesUpdate{Tables: tables, Changed: m.GetTables(), Deleted: deleted, Snapshot: m.GetSnapshot()}
}
