package clientaddr

import (
	"net/netip"
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	lb, err := Parse("--trusted-proxy-cidrs", []string{"10.0.0.0/8, 2001:db8:ffff::/48"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted Trusted
		peer    string
		xff     []string
		want    string // "" for invalid
	}{
		{"peer with port", nil, "192.0.2.9:443", nil, "192.0.2.9"},
		{"peer without port (Envoy's source.address)", nil, "192.0.2.9", nil, "192.0.2.9"},
		{"IPv6 peer", nil, "[2001:DB8::1]:443", nil, "2001:db8::1"},
		{"mapped IPv4 is IPv4", nil, "[::ffff:192.0.2.9]:1", nil, "192.0.2.9"},
		{"zone dropped", nil, "fe80::1%eth0", nil, "fe80::1"},
		{"not an address", nil, "\x1b[31mred", nil, ""},
		{"empty", nil, "", nil, ""},
		{"huge", nil, strings.Repeat("1", 1<<20), nil, ""},
		{"untrusted peer: its X-Forwarded-For is not believed", lb, "192.0.2.9:1", []string{"10.1.1.1, 198.51.100.7"}, "192.0.2.9"},
		{"no trusted proxies: X-Forwarded-For ignored", nil, "192.0.2.9:1", []string{"198.51.100.7"}, "192.0.2.9"},
		{"trusted peer: right-most hop", lb, "10.0.0.1:1", []string{"198.51.100.7"}, "198.51.100.7"},
		{"a client's own hops left of the real one are ignored", lb, "10.0.0.1:1", []string{"203.0.113.66, 198.51.100.7"}, "198.51.100.7"},
		{"trusted hops are skipped", lb, "10.0.0.1:1", []string{"198.51.100.7, 10.2.2.2", "10.3.3.3"}, "198.51.100.7"},
		{"repeated headers read as one list", lb, "10.0.0.1:1", []string{"203.0.113.66", "198.51.100.7"}, "198.51.100.7"},
		{"an unreadable hop stops the walk", lb, "10.0.0.1:1", []string{"198.51.100.7, junk, 10.2.2.2"}, "10.2.2.2"},
		{"all trusted: the left-most trusted", lb, "10.0.0.1:1", []string{"10.2.2.2"}, "10.2.2.2"},
		{"no X-Forwarded-For: the peer", lb, "10.0.0.1:1", nil, "10.0.0.1"},
		{"IPv6 trusted proxy", lb, "[2001:db8:ffff::1]:1", []string{" 2001:db8::7 "}, "2001:db8::7"},
		{"mapped hop", lb, "10.0.0.1:1", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.trusted.Of(tc.peer, tc.xff)
			if (tc.want == "" && got.IsValid()) || (tc.want != "" && got.String() != tc.want) {
				t.Fatalf("Of(%.30q, %q) = %v, want %q", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

func TestOfDoesNotAllocate(t *testing.T) {
	lb, _ := Parse("f", []string{"10.0.0.0/8"})
	xff := []string{"203.0.113.66, 198.51.100.7, 10.2.2.2"}
	if n := testing.AllocsPerRun(1000, func() { lb.Of("10.0.0.1:5555", xff) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func TestParseNamesTheFlag(t *testing.T) {
	if _, err := Parse("--trusted-proxy-cidrs", []string{"10.0.0.0/33"}); err == nil || !strings.Contains(err.Error(), "--trusted-proxy-cidrs") || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Fatalf("err = %v", err)
	}
}

func TestRangesFailClosed(t *testing.T) {
	in := netip.MustParseAddr("192.0.2.9")
	for _, tc := range []struct {
		ranges []string
		want   bool
	}{
		{[]string{"192.0.2.0/24"}, true},
		{[]string{"192.0.2.9/24"}, true}, // unmasked, as isCIDR lets in
		{[]string{"198.51.100.0/24"}, false},
		{[]string{"nonsense"}, false},
		{[]string{"nonsense", "192.0.2.9/32"}, true},
		{[]string{"::ffff:192.0.2.0/120"}, false}, // a mapped range is not IPv4
		{[]string{"0.0.0.0/0"}, true},
	} {
		r := Ranges(tc.ranges)
		if r == nil {
			t.Fatalf("%v: nil ranges would admit everyone", tc.ranges)
		}
		if got := InRanges(r, in); got != tc.want {
			t.Errorf("%v contains %v = %v, want %v", tc.ranges, in, got, tc.want)
		}
	}
	if Ranges(nil) != nil {
		t.Error("no ranges must be nil (any address)")
	}
}
