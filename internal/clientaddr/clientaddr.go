// Package clientaddr decides which address a request came from, the same
// way on every interface of the auth proxy: the refusal log, X-Real-Ip, a
// key's allowedSourceRanges and the failed-attempt throttle all use it.
package clientaddr

import (
	"fmt"
	"net/netip"
	"strings"
)

// Trusted are the peers (load balancers, gateways) whose X-Forwarded-For
// is believed: --trusted-proxy-cidrs.
type Trusted []netip.Prefix

// Contains reports whether a is a trusted peer.
func (t Trusted) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of is the client's address: the peer, or, when the peer is trusted, the
// right-most X-Forwarded-For hop that is not itself trusted. A client can
// prepend any hops it likes, so nothing left of the first untrusted hop
// (reading from the right) is believed, and an unreadable hop stops the
// walk at the last trusted address seen. peer is "ip", "ip:port" or
// "[ip]:port"; the result is invalid when it is none of them. It does not
// allocate.
func (t Trusted) Of(peer string, forwardedFor []string) netip.Addr {
	addr := parse(peer)
	if !addr.IsValid() || len(t) == 0 || !t.Contains(addr) {
		return addr
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		rest := forwardedFor[i]
		for rest != "" {
			hop := rest
			if c := strings.LastIndexByte(rest, ','); c >= 0 {
				hop, rest = rest[c+1:], rest[:c]
			} else {
				rest = ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil {
				return addr
			}
			a = a.WithZone("").Unmap()
			if !t.Contains(a) {
				return a
			}
			addr = a
		}
	}
	return addr
}

// parse reads "ip", "ip:port" or "[ip]:port" into an unmapped address.
func parse(peer string) netip.Addr {
	if ap, err := netip.ParseAddrPort(peer); err == nil {
		return ap.Addr().WithZone("").Unmap()
	}
	a, err := netip.ParseAddr(peer)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// Parse reads CIDR flag values (repeatable, comma-separated); flag names
// the flag in the error.
func Parse(flag string, values []string) (Trusted, error) {
	var out Trusted
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR (for example 10.0.0.0/8 or 2001:db8::/32)", flag, s)
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// Ranges reads a key's published allowedSourceRanges. A range that does
// not parse (the CRD lets only CIDRs in, so never in practice) admits no
// address: a restriction fails closed, never open. nil for none.
func Ranges(values []string) []netip.Prefix {
	if len(values) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		p, err := netip.ParsePrefix(strings.TrimSpace(v))
		if err != nil {
			out = append(out, netip.Prefix{}) // contains nothing
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// InRanges reports whether a is in one of ranges.
func InRanges(ranges []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
