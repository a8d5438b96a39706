// Command startup fills a database with verified numbers and measures how
// long the server takes from exec to a served page on it.
//
//	go build -o /tmp/verifier . && go run ./bench/startup -db /tmp/1m.db -fill 1000000 -binary /tmp/verifier
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"verifier/db"
	"verifier/verify"
)

func main() {
	path := flag.String("db", "startup.db", "database file")
	fill := flag.Int("fill", 0, "first add this many verified numbers")
	binary := flag.String("binary", "", "server binary to start")
	runs := flag.Int("runs", 5, "start-ups to measure")
	flag.Parse()
	if *fill > 0 {
		if err := fillDB(*path, *fill); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if *binary != "" {
		if err := measure(*binary, *path, *runs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// fillDB writes n verified numbers through the store itself, many writers
// at once so its group commit packs them.
func fillDB(path string, n int) error {
	// Keyed as the server keys numbers without VERIFIER_SECRET: by the token
	// key kept in the file.
	store, err := db.Open(path, db.WithNumberSecret(func(s *db.Store) ([]byte, error) {
		return s.Secret("token-key", func() ([]byte, error) {
			b := make([]byte, 32)
			_, err := rand.Read(b)
			return b, err
		})
	}))
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	verifiedAt := time.Now().UTC()
	for range 512 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				phone := fmt.Sprintf("+1415%07d", 2000000+i%8000000)
				if i >= 8000000 {
					phone = fmt.Sprintf("+1212%07d", 2000000+i%8000000)
				}
				err := store.Update(context.Background(), phone, func(r *verify.Record) error {
					r.VerifiedAt = verifiedAt
					return nil
				})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	info, _ := os.Stat(path)
	fmt.Printf("filled %d verified numbers in %v; file %d bytes, %.0f bytes per number\n",
		n, time.Since(start).Round(time.Millisecond), info.Size(), float64(info.Size())/float64(n))
	return nil
}

// measure starts the server runs times and times exec to the first 200 on /.
func measure(binary, path string, runs int) error {
	var times []time.Duration
	for range runs {
		start := time.Now()
		cmd := exec.Command(binary, "-addr=127.0.0.1:0", "-db="+path)
		cmd.Env = append(os.Environ(), "VERIFIER_API_KEY=startup-measure")
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		url := ""
		for sc := bufio.NewScanner(out); sc.Scan(); {
			if u, ok := strings.CutPrefix(sc.Text(), "verifier listening on "); ok {
				url = u
				break
			}
		}
		for url != "" {
			resp, err := http.Get(url + "/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if url == "" {
			return fmt.Errorf("the server exited before it listened")
		}
		times = append(times, elapsed)
	}
	slices.Sort(times)
	fmt.Printf("start-up to a served page: median %v (runs: %v)\n", times[len(times)/2].Round(100*time.Microsecond), times)
	return nil
}
