// A TCP proxy between a client and a daemon that breaks connections on
// the test's word, never on a timer: cut closes every open connection (a
// real network fault: the client's calls fail UNAVAILABLE), and block
// refuses new ones (closing them at once) until unblock.

package sessionregistry_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

type proxy struct {
	target   string
	listener net.Listener

	mu          sync.Mutex
	open        map[net.Conn]struct{}
	blocked     bool
	connections int
	cuts        int
}

// newProxy listens on 127.0.0.1 and forwards to target until the test ends.
func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, listener: l, open: map[net.Conn]struct{}{}}
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.cut()
	})
	return p
}

func (p *proxy) addr() string { return p.listener.Addr().String() }

func (p *proxy) accept() {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		blocked := p.blocked
		if !blocked {
			p.connections++
		}
		p.mu.Unlock()
		if blocked {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.open[client], p.open[server] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(client, server)
		go p.pipe(server, client)
	}
}

func (p *proxy) pipe(from, to net.Conn) {
	_, _ = io.Copy(to, from)
	from.Close()
	to.Close()
	p.mu.Lock()
	delete(p.open, from)
	delete(p.open, to)
	p.mu.Unlock()
}

// cut closes every connection open now.
func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.open
	p.open = map[net.Conn]struct{}{}
	if len(conns) > 0 {
		p.cuts++
	}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// block cuts every connection and refuses new ones until unblock.
func (p *proxy) block() {
	p.mu.Lock()
	p.blocked = true
	p.mu.Unlock()
	p.cut()
}

func (p *proxy) unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

func (p *proxy) stats() (connections, cuts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connections, p.cuts
}
