package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

// TestBadSettingsAreRefusedWithTheirName: each new flag's bad value stops
// the start with a message naming it, before anything is opened.
func TestBadSettingsAreRefusedWithTheirName(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"-gc-percent=5", "gc-percent"},
		{"-memory-limit-mb=-2", "memory-limit-mb"},
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

// TestTheDefaultMemoryLimitFollowsTheConnectionCapUnlessGOMEMLIMITIsSet:
// the limit is what keeps an idle socket small at the default -gc-percent.
func TestTheDefaultMemoryLimitFollowsTheConnectionCapUnlessGOMEMLIMITIsSet(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	noEnv := func(string) string { return "" }
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		limit, conns int64
		getenv       func(string) string
		want         int64
	}{
		{-1, 19488, noEnv, 216 << 20},
		{-1, 512, noEnv, 68 << 20},
		{-1, 0, noEnv, math.MaxInt64}, // no connection cap: no limit
		{300, 19488, noEnv, 300 << 20},
		{0, 19488, noEnv, math.MaxInt64},
		{-1, 19488, func(k string) string { return map[string]string{"GOMEMLIMIT": "1GiB"}[k] }, 123 << 20},
	} {
		debug.SetMemoryLimit(123 << 20) // as if GOMEMLIMIT had set it
		cfg := listenConfig{gcPercent: defaultGCPercent, memoryLimit: tc.limit}
		cfg.conns.Max = int(tc.conns)
		tuneRuntime(cfg, tc.getenv, log)
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("-memory-limit-mb=%d with a cap of %d: limit %d MiB, want %d MiB", tc.limit, tc.conns, got>>20, tc.want>>20)
		}
	}
}
