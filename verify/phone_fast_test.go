package verify

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// referenceParse is parsePhone as libphonenumber alone answers it: the
// full Parse, IsValidNumber, Format and GetRegionCodeForNumber.
func referenceParse(input, defaultRegion string) (parsedPhone, error) {
	input = strings.TrimSpace(input)
	if input == "" || len(input) > maxPhoneInput {
		return parsedPhone{}, ErrInvalidPhone
	}
	num, err := phonenumbers.Parse(input, defaultRegion)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return parsedPhone{}, ErrInvalidPhone
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if len(e164) > maxE164Len {
		return parsedPhone{}, ErrInvalidPhone
	}
	return parsedPhone{e164, phonenumbers.GetRegionCodeForNumber(num)}, nil
}

func agree(t *testing.T, input, region string) bool {
	t.Helper()
	got, gotErr := parsePhone(input, region)
	want, wantErr := referenceParse(input, region)
	if got != want || (gotErr == nil) != (wantErr == nil) {
		t.Errorf("%q in %s: fast %+v %v, libphonenumber %+v %v", input, region, got, gotErr, want, wantErr)
		return false
	}
	return true
}

// TestTheNANPFastPathAgreesWithLibphonenumber: every area code and a
// spread of exchanges and lines, valid and invalid, plus random numbers,
// answer exactly what the full parse answers.
func TestTheNANPFastPathAgreesWithLibphonenumber(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	valid, n := 0, 0
	check := func(input string) {
		n++
		if !agree(t, input, "US") && t.Failed() && n > 20 {
			t.FailNow()
		}
		if _, err := parsePhone(input, "US"); err == nil {
			valid++
		}
	}
	for npa := range 1000 {
		for _, nxx := range []int{0, 100, 200, 555, 911, 999, rng.IntN(1000), rng.IntN(1000)} {
			check(fmt.Sprintf("+1%03d%03d%04d", npa, nxx, rng.IntN(10000)))
		}
	}
	for range 30_000 {
		check(fmt.Sprintf("+1%010d", rng.Uint64N(10_000_000_000)))
	}
	for _, odd := range []string{"+1", "+12", "+1415555267", "+141555526710", "+14155552671 ", " +14155552671",
		"+1415555267a", "+1-415-555-2671", "+10155552671", "+11155552671", "+2415555267", "+99999999999"} {
		check(odd)
	}
	if valid < n/10 || valid == n {
		t.Fatalf("%d of %d valid: the sample does not cover both kinds", valid, n)
	}
	t.Logf("%d numbers, %d valid, all agree", n, valid)
}

// TestTheUSPlanAnswersWhatLibphonenumberAnswers compares the precompiled
// plan with IsValidNumberForRegion itself, both ways: a wrong "valid" would
// let a bad number through, and a wrong "invalid" would only be slow (the
// caller then asks libphonenumber), so the parse tests above cannot see it.
func TestTheUSPlanAnswersWhatLibphonenumberAnswers(t *testing.T) {
	plan := usPlan()
	if plan == nil {
		t.Fatal("no US plan in libphonenumber's metadata")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var sample []string
	for npa := range 1000 {
		for _, nxx := range []int{0, 200, 555, 911, rng.IntN(1000), rng.IntN(1000)} {
			sample = append(sample, fmt.Sprintf("%03d%03d%04d", npa, nxx, rng.IntN(10000)))
		}
	}
	for range 30_000 {
		sample = append(sample, fmt.Sprintf("%010d", rng.Uint64N(10_000_000_000)))
	}
	sample = append(sample, "", "2", "415555267", "41555526710", "8002345678", "9002345678", "5002345678")
	valid := 0
	for _, national := range sample {
		n, _ := strconv.ParseUint(national, 10, 64)
		countryCode := int32(1)
		num := &phonenumbers.PhoneNumber{CountryCode: &countryCode, NationalNumber: &n}
		want := national != "" && national[0] != '0' && phonenumbers.IsValidNumberForRegion(num, "US")
		if got := plan.valid(national); got != want {
			t.Fatalf("%s: plan says valid=%v, libphonenumber %v", national, got, want)
		}
		if want {
			valid++
		}
	}
	if valid < len(sample)/10 || valid == len(sample) {
		t.Fatalf("%d of %d valid: the sample does not cover both kinds", valid, len(sample))
	}
	t.Logf("%d national numbers, %d valid, all agree", len(sample), valid)
}
