package main

import (
	"io"
	"strings"
	"testing"
)

// TestBadSettingsAreRefusedWithTheirName: each new flag's bad value stops
// the start with a message naming it, before anything is opened.
func TestBadSettingsAreRefusedWithTheirName(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"-gc-percent=5", "gc-percent"},
		{"-memory-limit-mb=-1", "memory-limit-mb"},
		{"-trusted-proxies=10.0.0.0/8,not-an-address", "trusted proxy"},
		{"-trusted-proxies=::ffff:10.0.0.0/80", "trusted proxy"},
		{"-debug-addr=0.0.0.0:6060", "debug address"},
		{"-log-format=xml", "log format"},
		{"-allowed-origins=shop.example", "allowed origin"},
		{"-public-url=/relative", "public URL"},
		{"-fallback-after=soon", "fallback-after"},
		{"-test-numbers=+15555550100", "test number"},
	} {
		_, err := parseConfig([]string{tc.arg}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %q", tc.arg, err, tc.want)
		}
	}
	if _, err := parseConfig([]string{"serve"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("a stray argument was accepted")
	}
}
