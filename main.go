// Command verifier serves a live phone-number verifier: one page, a
// WebSocket hub and SMS codes through Twilio.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"verifier/assets"
	"verifier/db"
	"verifier/hub"
	"verifier/stats"
	"verifier/token"
	"verifier/verify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "verifier:", err)
		os.Exit(1)
	}
}

// shutdownBudget is how long a stop may take, within the 10 s the contract
// allows.
const shutdownBudget = 8 * time.Second

// run starts the server and blocks until ctx ends, then shuts down. A
// first argument names another command (see commands): `serve` is the
// default.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, operand, flags := splitCommand(args)
	cmd, ok := commands[name]
	if !ok {
		return fmt.Errorf("unknown command %q: want one of %s", name, commandNames())
	}
	if operand == "" && cmd.operand != "" && !cmd.optional {
		return fmt.Errorf("%s needs %s", name, cmd.operand)
	}
	if operand != "" && cmd.operand == "" {
		return fmt.Errorf("unexpected arguments: %v", []string{operand})
	}
	cfg, err := parseConfig(flags, getenv, stderr)
	if err != nil {
		return err
	}
	return cmd.run(ctx, invocation{cfg: cfg, operand: operand, getenv: getenv, stdout: stdout, stderr: stderr})
}

// serve runs the server.
func serve(ctx context.Context, in invocation) error {
	cfg := in.cfg
	logs := newBufferedLog(in.stderr)
	defer logs.Close()
	log := newLogger(cfg.listen.logFormat, logs)
	if files := raiseFileLimit(); cfg.listen.conns.Max < 0 {
		cfg.listen.conns.Max = connectionCap(files)
		log.Info("connection cap", "event", "start", "reason", "max_connections", "max", cfg.listen.conns.Max, "open_files", files)
	}
	tuneRuntime(cfg.listen, in.getenv, log)
	store, peers, err := openState(cfg.listen, in.getenv, log)
	if err != nil {
		return err
	}
	defer store.Close()
	defer peers.close() // before the store: no event arrives for a closed store
	a, err := assemble(cfg, store, peers, in.getenv, in.stdout, log)
	if err != nil {
		return err
	}
	return a.serve(ctx, cfg)
}

// stateStore is where the server keeps its state: the bbolt file, or
// Redis for several servers.
type stateStore interface {
	verify.Store
	token.SpentTokens
	secretKeeper
	Ping() error
	Backup(w io.Writer) (int64, error)
	ForgetSpent(now time.Time) (int, error)
	ForgetVerifiedBefore(cutoff time.Time) (int, error)
	Forget(phone string) (found bool, err error)
	Close() error
}

var _ stateStore = (*db.Store)(nil)

// openStore opens the database with its numbers keyed by the server
// secret: every command that opens the file must, or it would read every
// number as new (the store refuses a file keyed by another secret).
func openStore(path string, getenv func(string) string, log *slog.Logger) (*db.Store, error) {
	return db.Open(path, db.WithLogger(log), db.WithNumberSecret(func(s *db.Store) ([]byte, error) {
		return tokenKey(s, getenv("VERIFIER_SECRET"))
	}))
}

// app is the assembled server.
type app struct {
	log     *slog.Logger
	out     io.Writer // standard output: the listening line
	metrics http.Handler
	board   *stats.Board
	bundle  *assets.Bundle
	store   stateStore
	peers   *cluster // nil for a single server
	hub     *hub.Hub
	svc     *verify.Service
	handler http.Handler
}

// serve listens until ctx ends, then stops in order: no new connections,
// every socket closed with 1001, the background tasks finished; the
// database is closed by the caller after that.
func (a *app) serve(ctx context.Context, all config) error {
	cfg := all.listen
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.handler,
		ReadHeaderTimeout: cfg.conns.HandshakeTimeout, // a slow-headers client holds no socket for long
		IdleTimeout:       2 * time.Minute}
	stopSide, err := a.serveSide(all)
	if err != nil {
		return err
	}
	defer stopSide()
	fmt.Fprintf(a.out, "verifier listening on http://%s\n", listenURLHost(ln.Addr()))

	background, stopBackground := a.startBackground(ctx, all.rules.retention)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		stopBackground()
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "event", "shutdown", "reason", "signal")
	err = a.shutdown(srv)
	stopBackground()
	background.Wait()
	a.svc.Wait() // confirmation texts under way
	return err
}

// startBackground runs the expiry sweeper, the spent-token janitor and,
// with a retention period, the forgetting of old verified numbers, until
// stop is called.
func (a *app) startBackground(ctx context.Context, retention time.Duration) (*sync.WaitGroup, context.CancelFunc) {
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		a.every(ctx, time.Second, "sweep", func(time.Time) error {
			if !a.peers.holdsSweep(ctx) {
				return nil // another server sweeps this second
			}
			_, err := a.svc.SweepExpired(ctx)
			return err
		})
	})
	wg.Go(func() {
		a.every(ctx, time.Minute, "forget_spent_tokens", func(now time.Time) error { _, err := a.store.ForgetSpent(now); return err })
	})
	a.peers.run(ctx, &wg)
	if retention > 0 {
		wg.Go(func() { a.every(ctx, retentionSweep(retention), "retention", a.forgetVerifiedBefore(retention)) })
	}
	return &wg, stop
}

// retentionSweep is how often old verified numbers are looked for: a tenth
// of the period, from a second to an hour.
func retentionSweep(period time.Duration) time.Duration {
	return min(max(period/10, time.Second), time.Hour)
}

func (a *app) forgetVerifiedBefore(period time.Duration) func(now time.Time) error {
	return func(now time.Time) error {
		n, err := a.store.ForgetVerifiedBefore(now.Add(-period))
		if n > 0 {
			a.log.Info("retention", "event", "retention", "reason", "forgot_verified", "numbers", n)
		}
		return err
	}
}

// every runs task each interval until ctx ends, logging its failures.
func (a *app) every(ctx context.Context, interval time.Duration, name string, task func(now time.Time) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := task(now); err != nil && ctx.Err() == nil {
				a.log.Error(name, "event", name, "reason", "store_error", "err", err)
			}
		}
	}
}

// shutdown stops accepting and closes every socket. http.Server.Shutdown
// leaves hijacked WebSockets alone: the hub closes them (1001) and waits
// for their handlers, so no write is cut short.
func (a *app) shutdown(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Shutdown(ctx) }()
	if err := errors.Join(a.hub.Shutdown(ctx), <-srvDone); err != nil {
		a.log.Warn("shutdown incomplete", "event", "shutdown", "reason", "timeout", "err", err)
	}
	return nil
}

// tuneRuntime sets the collector from the flags, which win over GOGC and
// GOMEMLIMIT in the environment; the default memory limit follows the
// connection cap, unless GOMEMLIMIT names one.
func tuneRuntime(cfg listenConfig, getenv func(string) string, log *slog.Logger) {
	debug.SetGCPercent(cfg.gcPercent)
	limit := cfg.memoryLimit
	if limit < 0 {
		if getenv("GOMEMLIMIT") != "" {
			return
		}
		limit = memoryBudget(cfg.conns.Max)
	}
	if limit == 0 {
		debug.SetMemoryLimit(math.MaxInt64) // none, whatever GOMEMLIMIT says
		return
	}
	debug.SetMemoryLimit(limit << 20)
	log.Info("memory limit", "event", "start", "reason", "memory_limit", "mib", limit, "gc_percent", cfg.gcPercent)
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// listenURLHost names the listener in a form a browser can open.
func listenURLHost(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		port := 0
		if ok {
			port = tcp.Port
		}
		return fmt.Sprintf("localhost:%d", port)
	}
	return tcp.String()
}
