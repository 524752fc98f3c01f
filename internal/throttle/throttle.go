// Package throttle slows down a source that keeps presenting bad keys:
// after Failures refused attempts from one address (IPv6 grouped by /64)
// within Window, every request from it is answered 429 until the window
// ends, before any key is looked up. Successes are never counted, so no
// honest client reaches it; the table of sources is bounded, least
// recently failing first out.
package throttle

import (
	"container/list"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/octopods/octopods-operator/internal/clientaddr"
)

// Defaults: no integration fails 100 times a minute on purpose, and a
// guesser at 100 a minute learns nothing from a 256-bit key space.
const (
	DefaultFailures   = 100
	DefaultWindow     = time.Minute
	DefaultMaxSources = 65536
)

// Config is the throttle's flags.
type Config struct {
	// Failures per Window from one source before it is throttled; 0: off.
	Failures int
	Window   time.Duration
	// MaxSources bounds the table: the least recently failing source goes.
	MaxSources int
	// Exempt sources are never throttled (a NAT or CI egress).
	Exempt clientaddr.Trusted
	// Private counts private, loopback and link-local sources too. Off by
	// default: such a source is, far more often than a guesser, a gateway,
	// an ingress controller or a node in front of the proxy, whose address
	// stands for every client behind it; throttling it would refuse them
	// all. Name those in --trusted-proxy-cidrs and the clients behind them
	// are counted one by one.
	Private bool
}

// sharedAddressSpace is RFC 6598's 100.64.0.0/10 (carrier-grade NAT, and
// some clusters' pod ranges): as private as RFC 1918 for this purpose.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// counted reports whether failures from a are counted at all.
func (t *Throttle) counted(a netip.Addr) bool {
	if t.cfg.Exempt.Contains(a) {
		return false
	}
	return t.cfg.Private || !private(a)
}

// private reports whether a is private, loopback, link-local or in the
// shared address space.
func private(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || sharedAddressSpace.Contains(a)
}

// Throttle counts failures per source.
type Throttle struct {
	cfg Config
	// until is the latest end of any source's throttling (unix nanos):
	// past it, nothing is throttled and Blocked returns at once.
	until atomic.Int64

	mu      sync.RWMutex
	sources map[netip.Prefix]*list.Element // of *source
	lru     *list.List                     // front: most recent failure
}

type source struct {
	key         netip.Prefix
	windowStart int64 // unix nanos
	failures    int
}

// New returns a throttle, or nil (off) when cfg.Failures is 0.
func New(cfg Config) *Throttle {
	if cfg.Failures <= 0 {
		return nil
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	return &Throttle{cfg: cfg, sources: map[netip.Prefix]*list.Element{}, lru: list.New()}
}

// SourceOf groups an address into its source: an IPv4 address, or an IPv6
// /64 (one host's whole allocation).
func SourceOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Active reports whether any source may be throttled at now: when not,
// the caller need not even work out the client's address.
func (t *Throttle) Active(now time.Time) bool {
	return t != nil && now.UnixNano() < t.until.Load()
}

// Blocked reports whether client is throttled at now, and for how long.
func (t *Throttle) Blocked(client netip.Addr, now time.Time) (bool, time.Duration) {
	if !t.Active(now) || !client.IsValid() {
		return false, 0
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	el := t.sources[SourceOf(client)]
	if el == nil {
		return false, 0
	}
	s := el.Value.(*source)
	end := s.windowStart + int64(t.cfg.Window)
	if s.failures < t.cfg.Failures || now.UnixNano() >= end {
		return false, 0
	}
	return true, time.Duration(end - now.UnixNano())
}

// Failed counts a refused attempt from client.
func (t *Throttle) Failed(client netip.Addr, now time.Time) {
	if t == nil || !client.IsValid() || !t.counted(client.Unmap()) {
		return
	}
	key, at := SourceOf(client), now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	el := t.sources[key]
	if el == nil {
		if t.lru.Len() >= t.cfg.MaxSources {
			oldest := t.lru.Back()
			delete(t.sources, oldest.Value.(*source).key)
			t.lru.Remove(oldest)
		}
		el = t.lru.PushFront(&source{key: key, windowStart: at})
		t.sources[key] = el
	} else {
		t.lru.MoveToFront(el)
	}
	s := el.Value.(*source)
	if at >= s.windowStart+int64(t.cfg.Window) {
		s.windowStart, s.failures = at, 0
	}
	s.failures++
	if s.failures == t.cfg.Failures {
		end := s.windowStart + int64(t.cfg.Window)
		for {
			cur := t.until.Load()
			if cur >= end || t.until.CompareAndSwap(cur, end) {
				break
			}
		}
	}
}

// Len is the number of sources remembered.
func (t *Throttle) Len() int {
	if t == nil {
		return 0
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lru.Len()
}
