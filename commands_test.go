package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"verifier/seal"
)

// runCommand runs a subcommand as `verifier <args>` would and returns its
// standard output.
func runCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return out.String(), err
}

// numberForms are the ways a number could sit in a file: E.164, its digits,
// its national digits, and the 8-byte integer a link carries.
func numberForms(phone string) [][]byte {
	digits := strings.TrimPrefix(phone, "+")
	n, _ := strconv.ParseUint(digits, 10, 64)
	return [][]byte{[]byte(phone), []byte(digits), []byte(digits[1:]), binary.BigEndian.AppendUint64(nil, n)}
}

// heldForms lists the numbers of phones the file holds in any form.
func heldForms(t *testing.T, path string, phones ...string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, phone := range phones {
		for _, form := range numberForms(phone) {
			if bytes.Contains(raw, form) {
				held = append(held, phone)
				break
			}
		}
	}
	return held
}

// recordKey is the key the file keeps phone's record under.
func recordKey(t *testing.T, dbPath, phone string) []byte {
	t.Helper()
	store, err := openStore(dbPath, func(string) string { return "" }, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	secret, err := tokenKey(store, "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := seal.Key(secret, "phone number key")
	m := hmac.New(sha256.New, key)
	m.Write([]byte(phone))
	return m.Sum(nil)[:16]
}

func verifiedIn(t *testing.T, dbPath string, phones ...string) (missing []string) {
	t.Helper()
	store, err := openStore(dbPath, func(string) string { return "" }, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, phone := range phones {
		if rec, err := store.Get(context.Background(), phone); err != nil || !rec.Verified() {
			missing = append(missing, phone)
		}
	}
	return missing
}

func TestAThousandFlowsLeaveNoPhoneNumberInTheFile(t *testing.T) {
	needsFile(t)
	if testing.Short() {
		t.Skip("1,000 flows; skipped with -short")
	}
	dbPath := filepath.Join(t.TempDir(), "v.db")
	ts := startServer(t, append([]string{"-db=" + dbPath, "-public-url=https://verify.example.com"}, noLimits...), nil)
	phones := make([]string, 1000)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range phones {
		phones[i] = numberN(i)
		wg.Go(func() {
			if err := flow(ts, phones[i]); err != nil {
				failed.Add(1)
			}
		})
		if i%100 == 99 {
			wg.Wait()
		}
	}
	wg.Wait()
	pending := numberN(1001)
	dial(t, ts.URL).register(pending) // one left pending: its number sits sealed in the index
	time.Sleep(200 * time.Millisecond)
	ts.stop()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d flows failed", n)
	}
	if held := heldForms(t, dbPath, append(phones, pending)...); len(held) > 0 {
		t.Fatalf("the file holds %d numbers, e.g. %s", len(held), held[0])
	}
}

func TestForgetErasesTheNumberAndItsKeyFromTheFile(t *testing.T) {
	needsFile(t)
	dbPath := filepath.Join(t.TempDir(), "v.db")
	ts := startServer(t, append([]string{"-db=" + dbPath}, noLimits...), nil)
	gone, kept := numberN(1), numberN(2)
	for i := range 400 { // many pages, so a freed one would linger
		if err := flow(ts, numberN(i)); err != nil {
			t.Fatal(err)
		}
	}
	dial(t, ts.URL).send("register", map[string]any{"phone_number": gone, "reverify": true}) // pending again
	time.Sleep(200 * time.Millisecond)
	ts.stop()
	key := recordKey(t, dbPath, gone)
	if raw, _ := os.ReadFile(dbPath); !bytes.Contains(raw, key) {
		t.Fatal("the record key is not in the file before forget: the test would prove nothing")
	}
	out, err := runCommand(t, "forget", "(415) 555-2001", "-db="+dbPath)
	if err != nil || !strings.Contains(out, "erased") {
		t.Fatalf("forget: %q, %v", out, err)
	}
	raw, _ := os.ReadFile(dbPath)
	if bytes.Contains(raw, key) || len(heldForms(t, dbPath, gone)) > 0 {
		t.Fatal("the forgotten number's key or number is still in the file")
	}
	if missing := verifiedIn(t, dbPath, kept); len(missing) > 0 {
		t.Fatalf("forget took %v with it", missing)
	}
	if missing := verifiedIn(t, dbPath, gone); len(missing) != 1 {
		t.Fatal("the forgotten number still reads as verified")
	}
	if out, _ := runCommand(t, "forget", gone, "-db="+dbPath); !strings.Contains(out, "nothing was kept") {
		t.Fatalf("forget again: %q", out)
	}
}

func TestABackupTakenUnderLoadHasEveryNumberVerifiedBeforeIt(t *testing.T) {
	needsFile(t)
	dbPath := filepath.Join(t.TempDir(), "v.db")
	ts := startServer(t, append([]string{"-db=" + dbPath, "-admin-addr=127.0.0.1:0"}, noLimits...), nil)
	admin := strings.TrimPrefix(ts.stdout.waitFor(t, "verifier side listener on "), "verifier side listener on http://")
	before := make([]string, 50)
	for i := range before {
		before[i] = numberN(i)
		if err := flow(ts, before[i]); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for w := range 8 { // flows go on while the backup is taken
		load.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				flow(ts, numberN(100+w*1000+i%1000))
			}
		})
	}
	backup := filepath.Join(t.TempDir(), "copy.db")
	out, err := runCommand(t, "backup", backup, "-db="+dbPath, "-admin-addr="+admin)
	stop()
	load.Wait()
	if err != nil || !strings.Contains(out, "bytes written") {
		t.Fatalf("backup: %q, %v", out, err)
	}
	if missing := verifiedIn(t, backup, before...); len(missing) > 0 {
		t.Fatalf("the backup lacks %d numbers verified before it, e.g. %s", len(missing), missing[0])
	}
	if out, err := runCommand(t, "check", "-db="+backup); err != nil || !strings.Contains(out, "0 unreadable") {
		t.Fatalf("check of the backup: %q, %v", out, err)
	}
}

func TestTheAPIKeyRotatesAndCommandsNameTheirArguments(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "v.db")
	first, err := runCommand(t, "api-key", "-db="+dbPath)
	if err != nil || len(strings.TrimSpace(first)) != 48 {
		t.Fatalf("api-key: %q, %v", first, err)
	}
	rotated, err := runCommand(t, "api-key", "rotate", "-db="+dbPath)
	if err != nil || rotated == first {
		t.Fatalf("rotate: %q, %v", rotated, err)
	}
	if now, _ := runCommand(t, "api-key", "-db="+dbPath); now != rotated {
		t.Fatalf("after the rotation api-key prints %q, want %q", now, rotated)
	}
	if out, err := runCommand(t, "version"); err != nil || !strings.HasPrefix(out, "verifier ") {
		t.Fatalf("version: %q, %v", out, err)
	}
	for _, args := range [][]string{{"backup"}, {"forget"}, {"launch"}, {"check", "extra"}, {"forget", "not-a-number", "-db=" + dbPath}} {
		if _, err := runCommand(t, args...); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}

func TestNumbersVerifiedLongerAgoThanTheRetentionAreForgotten(t *testing.T) {
	ts := startServer(t, append([]string{"-forget-verified-after=1s"}, noLimits...), nil)
	if err := flow(ts, phone); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ts.URL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.register(phone)
		f := c.next()
		if f.Event == "code_generated" {
			return // forgotten: a new code, as for a number never seen
		}
		if f.reason() != "already_verified" || time.Now().After(deadline) {
			t.Fatalf("got %s %v, want the number forgotten within 10 s", f.Event, f.Data)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	ts := startServer(t, nil, nil)
	if _, err := runCommand(t, "healthcheck", ts.URL); err != nil {
		t.Fatalf("healthcheck of a live server: %v", err)
	}
	if _, err := runCommand(t, "healthcheck", "http://127.0.0.1:1"); err == nil {
		t.Fatal("healthcheck of nothing passed")
	}
}
