package kafka

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// inProcess maps the address of every embedded broker of this process to
// its listener, so that a client of the same process connects to it in
// memory instead of through the loopback interface (see inProcessDialer).
var inProcess sync.Map // string → *dualListener

// dualListener is an embedded broker's listener: it accepts TCP
// connections on a loopback port, whose address the broker advertises and
// other processes use, and in-memory connections (net.Pipe) from clients
// of this process that dial that address.
//
// Why: a goroutine blocked on a socket is woken by the runtime's network
// poller, which a scheduler whose processors are all busy runs only when
// one of them runs out of work (or sysmon notices, after up to 10 ms). In
// the closed loop — the twin scoring on one core, the tick's hops on the
// other — every Kafka hop paid that wait: the features read a tick's
// watermark 0.26–0.29 ms after the twin produced it over loopback TCP,
// 0.18 ms over a pipe, whose reader is woken directly (README, "Closed
// loop", change (25)).
type dualListener struct {
	tcp   net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error
	// pipes counts the in-memory connections handed to Accept.
	pipes atomic.Int64
}

// listenDual listens on address over TCP and registers the listener for
// in-process dialing under its address; kfake calls it for each broker.
func listenDual(network, address string) (net.Listener, error) {
	var lc net.ListenConfig
	tcp, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	l := &dualListener{tcp: tcp, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptTCP()
	inProcess.Store(tcp.Addr().String(), l)
	return l, nil
}

// acceptTCP hands the TCP connections to Accept until the listener
// closes. An accept error ends TCP accepting only: clients of this
// process still connect in memory.
func (l *dualListener) acceptTCP() {
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			return
		}
		select {
		case l.conns <- c:
		case <-l.done:
			_ = c.Close()
			return
		}
	}
}

// Accept returns the next connection, over TCP or in memory.
func (l *dualListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops both kinds of accepting and forgets the address.
func (l *dualListener) Close() error {
	l.once.Do(func() {
		inProcess.Delete(l.tcp.Addr().String())
		close(l.done)
		l.err = l.tcp.Close()
	})
	return l.err
}

// Addr is the TCP address, which the broker advertises.
func (l *dualListener) Addr() net.Addr { return l.tcp.Addr() }

// dial connects to the broker in memory.
func (l *dualListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		l.pipes.Add(1)
		return client, nil
	case <-l.done:
		_, _ = client.Close(), server.Close()
		return nil, fmt.Errorf("dialing the embedded broker at %s in memory: %w", l.tcp.Addr(), net.ErrClosed)
	case <-ctx.Done():
		_, _ = client.Close(), server.Close()
		return nil, ctx.Err()
	}
}

// inProcessDialer returns a kgo.Dialer option when one of brokers is an
// embedded broker of this process: its addresses are dialed in memory,
// any other over TCP as kgo does by default. It returns nil otherwise.
func inProcessDialer(brokers []string) kgo.Opt {
	found := false
	for _, b := range brokers {
		if _, ok := inProcess.Load(b); ok {
			found = true
			break
		}
	}
	if !found {
		return nil
	}
	tcp := &net.Dialer{Timeout: 10 * time.Second}
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if l, ok := inProcess.Load(host); ok {
			return l.(*dualListener).dial(ctx)
		}
		return tcp.DialContext(ctx, network, host)
	})
}
