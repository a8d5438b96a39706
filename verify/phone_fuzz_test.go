package verify

import (
	"strings"
	"testing"
)

// FuzzNormalizePhone: whatever a browser sends, the wrapper answers
// without panicking, and what it accepts is E.164 that normalises to itself.
func FuzzNormalizePhone(f *testing.F) {
	for _, seed := range []string{"+14155552671", "(415) 555-2671", "+44 20 7183 8750", "12345", "",
		"+", "++1", "+1 415 555 2671 ext. 9", "٤١٥٥٥٥٢٦٧١", "+1\x00415", strings.Repeat("9", 70), "tel:+1-415-555-2671"} {
		f.Add(seed, "US")
	}
	f.Add("020 7183 8750", "GB")
	f.Add("415 555 2671", "ZZ")
	f.Add("+12015550123", "US")
	f.Add("+10005550123", "CA")
	f.Fuzz(func(t *testing.T, input, region string) {
		agree(t, input, region) // the fast path answers what libphonenumber answers
		e164, err := NormalizePhone(input, region)
		if err != nil {
			if e164 != "" {
				t.Fatalf("error %v with result %q", err, e164)
			}
			return
		}
		if len(e164) < 3 || len(e164) > 16 || e164[0] != '+' || strings.Trim(e164[1:], "0123456789") != "" {
			t.Fatalf("%q -> %q: not E.164", input, e164)
		}
		again, err := NormalizePhone(e164, "")
		if err != nil || again != e164 {
			t.Fatalf("%q -> %q -> %q, %v: not stable", input, e164, again, err)
		}
	})
}
