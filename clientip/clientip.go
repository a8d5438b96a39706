// Package clientip decides which client a request comes from, one way for
// every limit in the process: sends, connections, lookups and siteverify.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver names a request's client. Forwarding headers are believed only
// from trusted proxies: from anyone else they are ignored, so rotating
// them buys nothing.
type Resolver struct {
	trusted []netip.Prefix
}

// New trusts the proxies in trusted (none: the TCP peer is the client).
func New(trusted []netip.Prefix) Resolver { return Resolver{trusted: trusted} }

// ParseCIDRs reads "10.0.0.0/8, 192.0.2.7": prefixes or single addresses.
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			if p, err = unmapPrefix(p); err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", item, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want a CIDR (10.0.0.0/8) or an address", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// the IPv4 one it means: addresses are unmapped before they are compared.
func unmapPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.Addr().Is4In6() {
		return p, nil
	}
	if p.Bits() < 96 {
		return p, fmt.Errorf("an IPv4-mapped prefix needs at least 96 bits")
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96), nil
}

// Of returns the client's key: its IPv4 address, or its IPv6 /64 (one
// household or host gets a whole /64, so counting single IPv6 addresses
// would let one client be millions).
func (r Resolver) Of(req *http.Request) string {
	peer, ok := parseHostPort(req.RemoteAddr)
	if !ok {
		return req.RemoteAddr
	}
	if r.isTrusted(peer) {
		if a, ok := r.forwarded(req.Header); ok {
			return key(a)
		}
	}
	return key(peer)
}

func (r Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwarded takes the right-most address of X-Forwarded-For (or else
// Forwarded) that is not itself a trusted proxy: everything left of it
// was written by the client and may be forged.
func (r Resolver) forwarded(h http.Header) (netip.Addr, bool) {
	hops := splitHops(h.Values("X-Forwarded-For"), parseXFF)
	if len(hops) == 0 {
		hops = splitHops(h.Values("Forwarded"), parseForwarded)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := hops[i]()
		if !ok {
			return netip.Addr{}, false // a hop we cannot read: trust nothing beyond it
		}
		if !r.isTrusted(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func splitHops(values []string, parse func(string) (netip.Addr, bool)) []func() (netip.Addr, bool) {
	var hops []func() (netip.Addr, bool)
	for _, v := range values {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, func() (netip.Addr, bool) { return parse(strings.TrimSpace(hop)) })
		}
	}
	return hops
}

func parseXFF(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	return parseHostPort(s)
}

// parseForwarded reads one element of RFC 7239's Forwarded header:
// for=192.0.2.60;proto=http or for="[2001:db8::1]:4711".
func parseForwarded(s string) (netip.Addr, bool) {
	for pair := range strings.SplitSeq(s, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(name, "for") {
			continue
		}
		value = strings.Trim(value, `"`)
		if a, ok := parseXFF(strings.Trim(value, "[]")); ok {
			return a, true
		}
		return parseHostPort(value)
	}
	return netip.Addr{}, false
}

func parseHostPort(s string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func key(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
