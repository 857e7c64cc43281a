// What Watch and WatchTables share: one gRPC server stream at a time, read
// as the consumer asks, and with AutoResume the next one opened after a
// backoff, so that a consumer reads one feed across reconnects. Where the
// next call starts, what a message means and which failures are worth a new
// call are the caller's (watch.go, tables_watch.go).

package sessionregistry

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// Backoff is the pause between reconnects: Initial, doubling up to Max, with jitter.
type Backoff struct {
	Initial, Max time.Duration
}

// DefaultBackoff is the pause between reconnects unless the options' Backoff says otherwise.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// withDefaults fills zero fields from DefaultBackoff and keeps Max >= Initial.
func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return b
}

// watcher is what a client holds of each open watch, to end it on Close.
type watcher interface{ close() }

func (c *Client) forgetWatch(w watcher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watches, w)
}

// receiver is the reading side of a generated server-streaming client.
type receiver[M any] interface {
	Recv() (M, error)
}

// resuming owns the call of a WatchStream or TablesWatchStream: its
// opening, its end, the client's hold on it, and AutoResume's reconnects.
type resuming[M any] struct {
	client     *Client
	ctx        context.Context
	autoResume bool
	backoff    Backoff
	// openCall starts a call on ctx, from where the consumer is.
	openCall func(ctx context.Context) (receiver[M], error)
	// recoverable says whether AutoResume opens a new call after err (a
	// typed error, as FromError makes it); it may also change where that
	// call starts.
	recoverable func(err error) bool

	// The consumer's goroutine only.
	attempt int
	stream  receiver[M]
	final   error

	// mu also guards what the owning stream keeps for other goroutines.
	mu        sync.Mutex
	stopped   bool
	stop      chan struct{}
	cancel    context.CancelFunc
	lastError error
	tracked   bool
}

func newResuming[M any](c *Client, ctx context.Context, autoResume bool, b Backoff) resuming[M] {
	return resuming[M]{client: c, ctx: ctx, autoResume: autoResume, backoff: b.withDefaults(), stop: make(chan struct{})}
}

// lastErr is the last error AutoResume recovered from; nil if none.
func (r *resuming[M]) lastErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastError
}

// close cancels the call; next then returns io.EOF. Idempotent.
func (r *resuming[M]) close() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	close(r.stop)
	cancel := r.cancel
	tracked := r.tracked
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if tracked {
		r.client.forgetWatch(r)
	}
}

func (r *resuming[M]) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// next reads messages until accept takes one in (true: it made an item;
// false: a kind this version does not know) or the stream ends: io.EOF
// when it was closed (or, without AutoResume, when the daemon ended it
// without an error), else the error, typed as FromError makes it. An error
// from accept ends the stream too. After the end it returns the same error
// again.
func (r *resuming[M]) next(accept func(M) (bool, error)) error {
	for {
		if r.final != nil {
			return r.final
		}
		if r.isStopped() {
			return r.end(io.EOF)
		}
		if r.stream == nil {
			if err := r.open(); err != nil {
				return r.end(err)
			}
		}
		if r.stream != nil {
			msg, err := r.stream.Recv()
			if err == nil {
				ok, err := accept(msg)
				if err != nil {
					return r.end(err)
				}
				if ok {
					r.attempt = 0
					return nil
				}
				continue
			}
			r.dropCall()
			if r.isStopped() {
				return r.end(io.EOF)
			}
			if ctxErr := r.ctx.Err(); ctxErr != nil {
				return r.end(ctxErr)
			}
			var failure error
			if err != io.EOF {
				failure = FromError(err)
			}
			if !r.autoResume {
				if failure == nil {
					failure = io.EOF // the daemon ended the stream with OK
				}
				return r.end(failure)
			}
			if failure != nil {
				if !r.recoverable(failure) {
					return r.end(failure)
				}
				r.recovered(failure)
			}
		}
		if err := r.sleep(r.backoffDelay()); err != nil {
			return r.end(err)
		}
	}
}

// open starts a call. An error it returns ends the stream; a call that
// fails to start for a reason worth retrying leaves r.stream nil and
// records the failure as a Recv error would.
func (r *resuming[M]) open() error {
	// A stream that was running when the client closed ends cleanly; one
	// started on a closed client fails as unary calls do.
	if !r.track() {
		return closedError()
	}
	if r.client.isClosed() {
		return io.EOF
	}
	ctx, cancel := r.client.callContext(r.ctx, false)
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		cancel()
		return io.EOF
	}
	r.cancel = cancel
	r.mu.Unlock()
	stream, err := r.openCall(ctx)
	if err != nil {
		r.dropCall()
		if r.isStopped() {
			return io.EOF
		}
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		failure := FromError(err)
		if !r.autoResume || !r.recoverable(failure) {
			return failure
		}
		r.recovered(failure)
		return nil
	}
	r.stream = stream
	return nil
}

func (r *resuming[M]) recovered(failure error) {
	r.mu.Lock()
	r.lastError = failure
	r.mu.Unlock()
}

// track registers the stream with its client, so that Client.Close ends
// it; false if the client closed meanwhile.
func (r *resuming[M]) track() bool {
	r.mu.Lock()
	tracked := r.tracked
	r.tracked = true
	r.mu.Unlock()
	if tracked {
		return true
	}
	c := r.client
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.watches[r] = struct{}{}
	return true
}

func (r *resuming[M]) dropCall() {
	r.stream = nil
	r.mu.Lock()
	cancel := r.cancel
	r.cancel = nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// end makes err the stream's last word and lets go of the call and the client.
func (r *resuming[M]) end(err error) error {
	r.final = err
	r.dropCall()
	r.mu.Lock()
	tracked := r.tracked
	r.mu.Unlock()
	if tracked {
		r.client.forgetWatch(r)
	}
	return err
}

// backoffDelay is exponential, with jitter.
func (r *resuming[M]) backoffDelay() time.Duration {
	d := r.backoff.Initial << r.attempt
	if d > r.backoff.Max || d <= 0 {
		d = r.backoff.Max
	}
	if r.attempt < 30 {
		r.attempt++
	}
	return jitter(d)
}

// sleep waits d; it returns io.EOF if the stream is closed meanwhile and
// ctx's error if ctx is done.
func (r *resuming[M]) sleep(d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-r.stop:
		return io.EOF
	case <-r.client.done:
		return io.EOF
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// reconnectable says whether a new call may succeed where this one failed,
// for a stream with no position to lose.
func reconnectable(err error) bool {
	var limit *WatcherLimitReachedError
	switch code := codeOf(err); code {
	// The watcher limit is worth waiting out (other watchers end); any other
	// exhaustion would fail the same way on every reconnect.
	case codes.ResourceExhausted:
		return errors.As(err, &limit)
	case codes.Unavailable, codes.Canceled, codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.Aborted:
		return true
	default:
		return false
	}
}
