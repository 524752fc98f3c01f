package throttle

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/octopods/octopods-operator/internal/clientaddr"
)

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	nat := clientaddr.Trusted{netip.MustParsePrefix("198.51.100.0/24")}
	th := New(Config{Failures: 3, Window: time.Minute, MaxSources: 4, Exempt: nat})
	a := netip.MustParseAddr("192.0.2.7")
	if th.Active(now) {
		t.Fatal("active with no failure")
	}
	for i := range 2 {
		th.Failed(a, now.Add(time.Duration(i)*time.Second))
	}
	if blocked, _ := th.Blocked(a, now.Add(2*time.Second)); blocked {
		t.Fatal("blocked under the threshold")
	}
	th.Failed(a, now.Add(2*time.Second))
	blocked, wait := th.Blocked(a, now.Add(10*time.Second))
	if !blocked || wait != 50*time.Second {
		t.Fatalf("blocked %v for %s, want 50s (until the window ends)", blocked, wait)
	}
	if blocked, _ := th.Blocked(netip.MustParseAddr("192.0.2.8"), now.Add(10*time.Second)); blocked {
		t.Fatal("another source is blocked")
	}
	if blocked, _ := th.Blocked(a, now.Add(time.Minute)); blocked || th.Active(now.Add(time.Minute)) {
		t.Fatal("still blocked once the window ended")
	}

	// IPv6 by /64: a host's addresses are one source.
	for i := range 3 {
		th.Failed(netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1)), now)
	}
	if blocked, _ := th.Blocked(netip.MustParseAddr("2001:db8:1:2:ffff::9"), now); !blocked {
		t.Fatal("the /64 is not one source")
	}
	if blocked, _ := th.Blocked(netip.MustParseAddr("2001:db8:1:3::1"), now); blocked {
		t.Fatal("the next /64 is blocked too")
	}

	// A gateway's private address stands for everyone behind it: not
	// counted unless asked.
	for _, gw := range []string{"10.1.2.3", "192.168.0.9", "127.0.0.2", "fd00::1", "fe80::1", "100.64.0.7"} {
		for range 10 {
			th.Failed(netip.MustParseAddr(gw), now)
		}
		if blocked, _ := th.Blocked(netip.MustParseAddr(gw), now); blocked {
			t.Fatalf("private source %s is blocked", gw)
		}
	}
	private := New(Config{Failures: 3, Window: time.Minute, Private: true})
	for range 3 {
		private.Failed(netip.MustParseAddr("10.1.2.3"), now)
	}
	if blocked, _ := private.Blocked(netip.MustParseAddr("10.1.2.3"), now); !blocked {
		t.Fatal("Private: a private source is not counted")
	}

	// Exempt sources are never counted.
	for range 10 {
		th.Failed(netip.MustParseAddr("198.51.100.9"), now)
	}
	if blocked, _ := th.Blocked(netip.MustParseAddr("198.51.100.9"), now); blocked {
		t.Fatal("an exempt source is blocked")
	}
}

func TestTableIsBoundedLeastRecentlyFailingOut(t *testing.T) {
	now := time.Now()
	th := New(Config{Failures: 2, Window: time.Minute, MaxSources: 3})
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }
	th.Failed(addr(1), now)
	th.Failed(addr(1), now) // 1 is throttled
	for i := 2; i <= 10; i++ {
		th.Failed(addr(i), now)
		th.Failed(addr(1), now) // keeps failing: stays most recent
	}
	if th.Len() != 3 {
		t.Fatalf("%d sources kept, want the cap of 3", th.Len())
	}
	if blocked, _ := th.Blocked(addr(1), now); !blocked {
		t.Fatal("the source failing all along was evicted")
	}
}

func TestOffWhenNoFailures(t *testing.T) {
	th := New(Config{})
	if th != nil {
		t.Fatal("Failures 0 must turn it off")
	}
	th.Failed(netip.MustParseAddr("192.0.2.1"), time.Now()) // nil-safe
	if blocked, _ := th.Blocked(netip.MustParseAddr("192.0.2.1"), time.Now()); blocked {
		t.Fatal("an off throttle blocks")
	}
}
