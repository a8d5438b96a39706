package seal

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var secret = bytes.Repeat([]byte{7}, 32)

func TestSealedValuesOpenOnlyInTheirOwnBox(t *testing.T) {
	links, _ := New(secret, "link")
	apps, _ := New(secret, "app")
	other, _ := New(bytes.Repeat([]byte{8}, 32), "link")
	sealed, err := links.Seal([]byte("+14155552671"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := links.Open(sealed); err != nil || string(got) != "+14155552671" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := links.Seal([]byte("+14155552671"))
	if bytes.Equal(sealed, again) {
		t.Fatal("the same value sealed twice looks the same")
	}
	for name, box := range map[string]*Box{"another purpose": apps, "another secret": other} {
		if _, err := box.Open(sealed); !errors.Is(err, ErrForged) {
			t.Errorf("%s opened it: %v", name, err)
		}
	}
	for i := range sealed {
		changed := bytes.Clone(sealed)
		changed[i] ^= 1
		if _, err := links.Open(changed); !errors.Is(err, ErrForged) {
			t.Fatalf("a flipped bit at %d opened: %v", i, err)
		}
	}
	if _, err := links.Open(sealed[:links.Overhead()-1]); !errors.Is(err, ErrForged) {
		t.Fatal("a cut value opened")
	}
}

func TestAShortSecretIsRefused(t *testing.T) {
	if _, err := New([]byte("short"), "link"); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

func TestALinkOpensToItsNumberAndNonceAndNothingElseOpens(t *testing.T) {
	links, _ := NewLinks(secret)
	id, nonce, err := links.New("+14155552671")
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 48 || strings.Contains(id, "4155552671") {
		t.Fatalf("id %q: want 48 characters that do not show the number", id)
	}
	phone, got, err := links.Open(id)
	if err != nil || phone != "+14155552671" || got != nonce || len(nonce) != 12 {
		t.Fatalf("Open = %q, %q, %v", phone, got, err)
	}
	other, nonce2, _ := links.New("+14155552671")
	if other == id || nonce2 == nonce {
		t.Fatal("two links for one number are alike")
	}
	for _, bad := range []string{"", "x", id[:47], id + "A", strings.Repeat("A", 48), id[:10] + "!" + id[11:], strings.Repeat("A", 5000)} {
		if _, _, err := links.Open(bad); !errors.Is(err, ErrForged) {
			t.Errorf("Open(%.20q...) = %v, want ErrForged", bad, err)
		}
	}
	for _, bad := range []string{"14155552671", "+1415555267x", ""} {
		if _, _, err := links.New(bad); err == nil {
			t.Errorf("New(%q) made a link", bad)
		}
	}
}
