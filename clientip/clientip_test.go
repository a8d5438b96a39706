package clientip

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func resolver(t *testing.T, trusted string) Resolver {
	t.Helper()
	p, err := ParseCIDRs(trusted)
	if err != nil {
		t.Fatal(err)
	}
	return New(p)
}

func request(remote string, h http.Header) *http.Request {
	r, _ := http.NewRequest("GET", "http://verify.example/ws", nil)
	r.RemoteAddr = remote
	for k, v := range h {
		r.Header[http.CanonicalHeaderKey(k)] = v
	}
	return r
}

func xff(v ...string) http.Header { return http.Header{"X-Forwarded-For": v} }
func fwd(v ...string) http.Header { return http.Header{"Forwarded": v} }

func TestClientOfARequest(t *testing.T) {
	// Proxies: 10.0.0.0/8, one bare address, and an IPv6 block.
	const trusted = "10.0.0.0/8, 192.168.1.1, 2001:db8:ffff::/48"
	const proxy = "10.0.0.1:43210"
	cases := []struct {
		name    string
		trusted string
		remote  string
		header  http.Header
		want    string
	}{
		// The TCP peer, when it is not a trusted proxy.
		{"no proxies trusted, no headers", "", "203.0.113.5:1234", nil, "203.0.113.5"},
		{"no proxies trusted: XFF ignored", "", "10.0.0.1:1234", xff("198.51.100.7"), "10.0.0.1"},
		{"no proxies trusted: Forwarded ignored", "", "10.0.0.1:1234", fwd("for=198.51.100.7"), "10.0.0.1"},
		{"untrusted peer: XFF ignored", trusted, "203.0.113.5:1234", xff("198.51.100.7"), "203.0.113.5"},
		{"untrusted peer: XFF naming a proxy ignored", trusted, "203.0.113.5:1234", xff("10.0.0.2"), "203.0.113.5"},
		{"untrusted peer: Forwarded ignored", trusted, "203.0.113.5:1234", fwd("for=198.51.100.7"), "203.0.113.5"},
		{"untrusted peer next to a bare trusted address", trusted, "192.168.1.2:1234", xff("198.51.100.7"), "192.168.1.2"},
		{"trusted proxy without headers is the client", trusted, proxy, nil, "10.0.0.1"},

		// X-Forwarded-For from a trusted proxy: the right-most untrusted hop.
		{"XFF one hop", trusted, proxy, xff("198.51.100.7"), "198.51.100.7"},
		{"XFF from a bare trusted address", trusted, "192.168.1.1:80", xff("198.51.100.7"), "198.51.100.7"},
		{"XFF right-most untrusted", trusted, proxy, xff("203.0.113.9, 198.51.100.7"), "198.51.100.7"},
		{"XFF trusted hops on the right skipped", trusted, proxy, xff("203.0.113.9, 198.51.100.7, 10.1.2.3, 192.168.1.1"), "198.51.100.7"},
		{"XFF without spaces", trusted, proxy, xff("203.0.113.9,198.51.100.7,10.1.2.3"), "198.51.100.7"},
		{"XFF two lines: the later is right of the earlier", trusted, proxy, xff("198.51.100.7", "203.0.113.9"), "203.0.113.9"},
		{"XFF two lines, trusted hop last", trusted, proxy, xff("203.0.113.9", "198.51.100.7, 10.0.0.2"), "198.51.100.7"},
		{"XFF three lines", trusted, proxy, xff("192.0.2.1", "192.0.2.2, 192.0.2.3", "10.0.0.9"), "192.0.2.3"},
		{"XFF hop with a port", trusted, proxy, xff("198.51.100.7:4711"), "198.51.100.7"},
		{"XFF IPv6 hop", trusted, proxy, xff("2001:db8:1:2::7"), "2001:db8:1:2::/64"},
		{"XFF bracketed IPv6 hop with a port", trusted, proxy, xff("[2001:db8:1:2::7]:4711"), "2001:db8:1:2::/64"},
		{"XFF from an IPv6 proxy", trusted, "[2001:db8:ffff::1]:443", xff("198.51.100.7"), "198.51.100.7"},
		{"XFF IPv6 proxy hop skipped", trusted, proxy, xff("198.51.100.7, 2001:db8:ffff:1::2"), "198.51.100.7"},
		{"XFF wins over Forwarded", trusted, proxy,
			http.Header{"X-Forwarded-For": {"198.51.100.7"}, "Forwarded": {"for=203.0.113.9"}}, "198.51.100.7"},

		// Forwarded (RFC 7239) from a trusted proxy.
		{"Forwarded for=", trusted, proxy, fwd("for=198.51.100.7"), "198.51.100.7"},
		{"Forwarded FOR= is case-insensitive", trusted, proxy, fwd("For=198.51.100.7"), "198.51.100.7"},
		{"Forwarded quoted", trusted, proxy, fwd(`for="198.51.100.7"`), "198.51.100.7"},
		{"Forwarded quoted with a port", trusted, proxy, fwd(`for="198.51.100.7:4711"`), "198.51.100.7"},
		{"Forwarded IPv6 in brackets", trusted, proxy, fwd(`for="[2001:db8:1:2::7]"`), "2001:db8:1:2::/64"},
		{"Forwarded IPv6 in brackets with a port", trusted, proxy, fwd(`for="[2001:db8:1:2::7]:4711"`), "2001:db8:1:2::/64"},
		{"Forwarded other pairs around for", trusted, proxy, fwd("proto=https;for=198.51.100.7;by=10.0.0.1"), "198.51.100.7"},
		{"Forwarded pairs with spaces", trusted, proxy, fwd("by=10.0.0.1; for=198.51.100.7; host=verify.example"), "198.51.100.7"},
		{"Forwarded right-most untrusted", trusted, proxy, fwd(`for=203.0.113.9, for="198.51.100.7:4711"`), "198.51.100.7"},
		{"Forwarded trusted hop skipped", trusted, proxy, fwd("for=198.51.100.7, for=10.0.0.3;proto=http"), "198.51.100.7"},
		{"Forwarded two lines", trusted, proxy, fwd("for=203.0.113.9", "for=198.51.100.7"), "198.51.100.7"},

		// A hop that cannot be read: nothing beyond it is believed, so the
		// proxy is counted. A forgery left of the client is never read.
		{"XFF garbage", trusted, proxy, xff("not-an-address"), "10.0.0.1"},
		{"XFF empty", trusted, proxy, xff(""), "10.0.0.1"},
		{"XFF garbage right of the client", trusted, proxy, xff("198.51.100.7, garbage"), "10.0.0.1"},
		{"XFF empty hop right of the client", trusted, proxy, xff("198.51.100.7,"), "10.0.0.1"},
		{"XFF garbage behind a trusted hop", trusted, proxy, xff("198.51.100.7, garbage, 10.0.0.2"), "10.0.0.1"},
		{"XFF garbage left of the client", trusted, proxy, xff("garbage, 198.51.100.7"), "198.51.100.7"},
		{"XFF out-of-range octet", trusted, proxy, xff("198.51.100.300"), "10.0.0.1"},
		{"XFF every hop a trusted proxy", trusted, proxy, xff("10.0.0.2, 10.0.0.3"), "10.0.0.1"},
		{"Forwarded for=unknown", trusted, proxy, fwd("for=unknown"), "10.0.0.1"},
		{"Forwarded obfuscated identifier", trusted, proxy, fwd("for=_hidden"), "10.0.0.1"},
		{"Forwarded element without for", trusted, proxy, fwd("proto=https;by=10.0.0.1"), "10.0.0.1"},
		{"Forwarded garbage right of the client", trusted, proxy, fwd("for=198.51.100.7, for=garbage"), "10.0.0.1"},
		{"Forwarded garbage", trusted, proxy, fwd("nonsense"), "10.0.0.1"},

		// IPv4-mapped IPv6 addresses are IPv4 addresses.
		{"mapped peer", "", "[::ffff:203.0.113.5]:1234", nil, "203.0.113.5"},
		{"mapped trusted proxy", trusted, "[::ffff:10.0.0.1]:1234", xff("198.51.100.7"), "198.51.100.7"},
		{"mapped XFF hop", trusted, proxy, xff("::ffff:198.51.100.7"), "198.51.100.7"},
		{"mapped XFF proxy hop skipped", trusted, proxy, xff("198.51.100.7, ::ffff:10.0.0.2"), "198.51.100.7"},
		{"mapped Forwarded hop", trusted, proxy, fwd(`for="[::ffff:198.51.100.7]:80"`), "198.51.100.7"},

		// IPv6 clients are keyed per /64.
		{"IPv6 peer", "", "[2001:db8:1:2::1]:1234", nil, "2001:db8:1:2::/64"},
		{"IPv6 peer, same /64", "", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1234", nil, "2001:db8:1:2::/64"},
		{"IPv6 peer, next /64", "", "[2001:db8:1:3::1]:1234", nil, "2001:db8:1:3::/64"},
		{"IPv6 untrusted peer's XFF ignored", trusted, "[2001:db8:1:2::1]:1234", xff("198.51.100.7"), "2001:db8:1:2::/64"},
		{"IPv4 is keyed per address", "", "203.0.113.6:1234", nil, "203.0.113.6"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolver(t, tc.trusted).Of(request(tc.remote, tc.header)); got != tc.want {
				t.Errorf("Of(%s, %v) trusting %q = %q, want %q", tc.remote, tc.header, tc.trusted, got, tc.want)
			}
		})
	}
}

// Two addresses in one /64 are one client; in different /64s, two. The
// same holds when a trusted proxy forwards them.
func TestClientIPv6SharesAKeyPer64(t *testing.T) {
	r := resolver(t, "10.0.0.0/8")
	key := func(remote string, h http.Header) string { return r.Of(request(remote, h)) }
	same := [][2]string{
		{"[2001:db8:aa:bb::1]:1", "[2001:db8:aa:bb:1234:5678:9abc:def0]:2"},
		{"[2001:db8:aa:bb::1]:1", "[2001:db8:aa:bb::2]:1"},
	}
	for _, p := range same {
		if a, b := key(p[0], nil), key(p[1], nil); a != b {
			t.Errorf("%s and %s: keys %q and %q, want one", p[0], p[1], a, b)
		}
	}
	differ := [][2]string{
		{"[2001:db8:aa:bb::1]:1", "[2001:db8:aa:bc::1]:1"},
		{"[2001:db8:aa:bb::1]:1", "[2001:db9:aa:bb::1]:1"},
	}
	for _, p := range differ {
		if a, b := key(p[0], nil), key(p[1], nil); a == b {
			t.Errorf("%s and %s share the key %q", p[0], p[1], a)
		}
	}
	if a, b := key("10.0.0.1:1", xff("2001:db8:aa:bb::1")), key("10.0.0.1:1", xff("2001:db8:aa:bb::ffff")); a != b || a != "2001:db8:aa:bb::/64" {
		t.Errorf("forwarded addresses in one /64: %q and %q", a, b)
	}
	if a, b := key("10.0.0.1:1", xff("2001:db8:aa:bb::1")), key("10.0.0.1:1", xff("2001:db8:aa:bc::1")); a == b {
		t.Errorf("forwarded addresses in two /64s share the key %q", a)
	}
	// IPv4 addresses, even neighbours, are their own clients.
	if a, b := key("198.51.100.7:1", nil), key("198.51.100.8:1", nil); a == b {
		t.Errorf("two IPv4 addresses share the key %q", a)
	}
}

func TestClientParseCIDRs(t *testing.T) {
	ok := []struct {
		list string
		want string // the prefixes, comma-separated
	}{
		{"", ""},
		{" , ,", ""},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"}, // masked
		{"192.0.2.7", "192.0.2.7/32"},
		{" 10.0.0.0/8 , 192.0.2.7 ,", "10.0.0.0/8,192.0.2.7/32"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"}, // a mapped address is its IPv4 address
		{"127.0.0.1/32,::1/128", "127.0.0.1/32,::1/128"},
	}
	for _, tc := range ok {
		got, err := ParseCIDRs(tc.list)
		if err != nil {
			t.Errorf("ParseCIDRs(%q): %v", tc.list, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, ",") != tc.want {
			t.Errorf("ParseCIDRs(%q) = %v, want %s", tc.list, s, tc.want)
		}
	}
	for _, junk := range []string{"junk", "10.0.0.0/33", "10.0.0.256", "10.0.0.0/8, nope", "192.0.2.7:80",
		"10.0.0.0/-1", "10.0.0/8", "localhost", "2001:db8::/129", "10.0.0.0/8;192.0.2.7"} {
		if got, err := ParseCIDRs(junk); err == nil {
			t.Errorf("ParseCIDRs(%q) = %v, want an error", junk, got)
		}
	}
	// A bare address trusts that address only.
	p, _ := ParseCIDRs("192.0.2.7")
	r := New(p)
	if got := r.Of(request("192.0.2.7:1", xff("198.51.100.7"))); got != "198.51.100.7" {
		t.Errorf("from the trusted 192.0.2.7: %q", got)
	}
	if got := r.Of(request("192.0.2.8:1", xff("198.51.100.7"))); got != "192.0.2.8" {
		t.Errorf("from 192.0.2.8, not trusted: %q", got)
	}
	if !p[0].Contains(netip.MustParseAddr("192.0.2.7")) {
		t.Errorf("%v does not contain its address", p[0])
	}
}

// Every address is unmapped before it is compared, so an IPv4-mapped
// prefix (::ffff:10.0.0.0/104) can never contain one. ParseCIDRs unmaps a
// bare mapped address; a mapped prefix must be unmapped too or refused,
// not accepted and silently trust nothing.
//
// KNOWN BUG: this fails today; the prefix is accepted as it is.
func TestClientParseCIDRsMappedPrefix(t *testing.T) {
	p, err := ParseCIDRs("::ffff:10.0.0.0/104")
	if err != nil {
		return // refused: fine
	}
	if got := New(p).Of(request("10.0.0.1:1", xff("198.51.100.7"))); got != "198.51.100.7" {
		t.Fatalf("ParseCIDRs accepted %v, which does not trust 10.0.0.1 (client %q): refuse it or unmap it to 10.0.0.0/8", p, got)
	}
}
