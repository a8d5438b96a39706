package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"verifier/db"
	"verifier/verify"
)

// invocation is one command's input.
type invocation struct {
	cfg     config
	operand string // the command's one argument, "" for none
	getenv  func(string) string
	stdout  io.Writer
	stderr  io.Writer
}

// command is a subcommand beside the server.
type command struct {
	operand  string // what its argument is, "" for none
	optional bool   // the argument may be left out
	help     string
	run      func(context.Context, invocation) error
}

var commands = map[string]command{
	"serve":       {help: "run the server (the default)", run: serve},
	"api-key":     {operand: "rotate", optional: true, help: "print the siteverify API key, or make a new one (rotate)", run: apiKeyCommand},
	"backup":      {operand: "FILE", help: "write a consistent copy of the database to FILE, live through -admin-addr if the server runs", run: backupCommand},
	"forget":      {operand: "NUMBER", help: "erase one number and everything about it (the server must be stopped)", run: forgetCommand},
	"check":       {help: "open the database read-only and report what it holds and what does not decode", run: checkCommand},
	"version":     {help: "print the module version and commit", run: versionCommand},
	"healthcheck": {operand: "URL", optional: true, help: "exit 0 when URL/healthz answers 200 (default: this -addr on loopback)", run: healthcheckCommand},
}

func commandNames() string {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// splitCommand takes the command name and its argument off the front of
// args; the flags follow them.
func splitCommand(args []string) (name, operand string, flags []string) {
	name = "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		operand, args = args[0], args[1:]
	}
	return name, operand, args
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// apiKeyCommand prints the key hosts send to /api/siteverify, on purpose,
// or replaces it (the server must be restarted to use the new one).
func apiKeyCommand(_ context.Context, in invocation) error {
	if in.operand != "" && in.operand != "rotate" {
		return fmt.Errorf("api-key %q: want no argument, or rotate", in.operand)
	}
	if key := in.getenv("VERIFIER_API_KEY"); key != "" {
		if in.operand == "rotate" {
			return errors.New("the API key comes from VERIFIER_API_KEY: change it there")
		}
		fmt.Fprintln(in.stdout, key)
		return nil
	}
	store, peers, err := openState(in.cfg.listen, in.getenv, quietLog())
	if err != nil {
		return fmt.Errorf("%w (is the server running on this file? stop it first)", err)
	}
	defer store.Close()
	defer peers.close()
	if in.operand == "rotate" {
		key, err := rotateAPIKey(store)
		if err == nil {
			fmt.Fprintln(in.stdout, key)
		}
		return err
	}
	key, _, err := storedAPIKey(store)
	if err == nil {
		fmt.Fprintln(in.stdout, key)
	}
	return err
}

// backupCommand copies the database to a file: from the file itself when
// no server holds it, else live from the server's admin listener.
func backupCommand(_ context.Context, in invocation) error {
	tmp := in.operand + ".partial"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	n, err := copyDatabase(in, out)
	if err == nil {
		err = out.Sync()
	}
	if closeErr := out.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, in.operand); err != nil {
		return err
	}
	fmt.Fprintf(in.stdout, "backup: %d bytes written to %s\n", n, in.operand)
	return nil
}

func copyDatabase(in invocation, w io.Writer) (int64, error) {
	if in.cfg.listen.store != "" {
		return 0, errors.New("the state is in Redis (-store): back it up with Redis's own RDB or AOF copies (BGSAVE)")
	}
	if admin := in.cfg.admin.addr; admin != "" && serverRuns(in.cfg.listen.dbPath) {
		return fetchBackup(admin, in.getenv("VERIFIER_ADMIN_KEY"), w)
	}
	store, err := openStore(in.cfg.listen.dbPath, in.getenv, quietLog())
	if err != nil {
		return 0, fmt.Errorf("%w (a running server holds the file: give its -admin-addr to back it up live)", err)
	}
	defer store.Close()
	return store.Backup(w)
}

// serverRuns reports whether a process holds the database (bbolt locks
// it): a read-only open then waits and fails.
func serverRuns(path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	_, err := db.Inspect(path)
	return err != nil && strings.Contains(err.Error(), "timeout")
}

// fetchBackup streams GET /admin/backup from the admin listener.
func fetchBackup(addr, key string, w io.Writer) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/admin/backup", nil)
	if err != nil {
		return 0, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /admin/backup: %s", resp.Status)
	}
	return io.Copy(w, resp.Body)
}

// forgetCommand answers a deletion request: the number's record goes, and
// the file is compacted so no freed page still holds it.
func forgetCommand(_ context.Context, in invocation) error {
	phone, err := verify.NormalizePhone(in.operand, in.cfg.rules.DefaultRegion)
	if err != nil && !verify.IsE164(in.operand) {
		return fmt.Errorf("forget %q: not a phone number", in.operand)
	} else if err != nil {
		phone = in.operand
	}
	found, err := forgetIn(in, phone)
	if err != nil {
		return fmt.Errorf("forget: %w", err)
	}
	if !found {
		fmt.Fprintf(in.stdout, "forget: nothing was kept about %s\n", verify.MaskPhone(phone))
		return nil
	}
	fmt.Fprintf(in.stdout, "forget: %s erased\n", verify.MaskPhone(phone))
	return nil
}

// forgetIn erases phone from the state: in Redis at once (its own
// persistence rewrites its files), from the bbolt file with the server
// stopped, then compacted.
func forgetIn(in invocation, phone string) (bool, error) {
	if in.cfg.listen.store != "" {
		store, peers, err := openState(in.cfg.listen, in.getenv, quietLog())
		if err != nil {
			return false, err
		}
		defer store.Close()
		defer peers.close()
		return store.Forget(phone)
	}
	path := in.cfg.listen.dbPath
	store, err := openStore(path, in.getenv, quietLog())
	if err != nil {
		return false, fmt.Errorf("%w (stop the server first: erasing needs the file to itself)", err)
	}
	found, err := store.Forget(phone)
	if closeErr := store.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = db.Compact(path)
	}
	return found, err
}

// checkCommand reports what the file holds.
func checkCommand(_ context.Context, in invocation) error {
	r, err := db.Inspect(in.cfg.listen.dbPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(in.stdout, "schema %d: %d numbers (%d verified, %d pending, %d with an app), %d unreadable; "+
		"%d expiry entries (%d stale); %d spent tokens\n",
		r.Schema, r.Numbers, r.Verified, r.Pending, r.Apps, r.Unreadable, r.Indexed, r.Stale, r.SpentTokens)
	if r.Unreadable > 0 {
		return fmt.Errorf("%d records do not decode (they read as new numbers)", r.Unreadable)
	}
	return nil
}

// versionCommand prints the module version and the commit it was built
// from.
func versionCommand(_ context.Context, in invocation) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build information in this binary")
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	commit := settings["vcs.revision"]
	if commit == "" {
		commit = "unknown"
	}
	if settings["vcs.modified"] == "true" {
		commit += " (modified)"
	}
	fmt.Fprintf(in.stdout, "verifier %s, commit %s %s, %s\n", info.Main.Version, commit, settings["vcs.time"], info.GoVersion)
	return nil
}

// healthcheckCommand is for container health checks, where no curl is.
func healthcheckCommand(_ context.Context, in invocation) error {
	base := in.operand
	if base == "" {
		_, port, err := net.SplitHostPort(in.cfg.listen.addr)
		if err != nil {
			return err
		}
		base = "http://127.0.0.1:" + port
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(strings.TrimRight(base, "/") + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}
