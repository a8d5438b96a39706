package verify

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidPhone means the input is not a dialable phone number.
var ErrInvalidPhone = errors.New("invalid phone number")

// maxPhoneInput bounds what is handed to the parser; no written form of a
// real number comes close.
const maxPhoneInput = 64

// maxE164Len is "+" and E.164's 15 digits.
const maxE164Len = 16

// parsedPhone is a valid number and the country (ISO 3166 region) it
// belongs to.
type parsedPhone struct {
	e164, country string
}

// NormalizePhone returns the E.164 form of a number written any common
// way, numbers without + read in defaultRegion; for tools (erasing a
// number), since the Service caches its parses.
func NormalizePhone(input, defaultRegion string) (string, error) {
	n, err := parsePhone(input, defaultRegion)
	return n.e164, err
}

func parsePhone(input, defaultRegion string) (parsedPhone, error) {
	input = strings.TrimSpace(input)
	if input == "" || len(input) > maxPhoneInput {
		return parsedPhone{}, ErrInvalidPhone
	}
	num, ok := parseNANP(input)
	if !ok {
		var err error
		if num, err = phonenumbers.Parse(input, defaultRegion); err != nil {
			return parsedPhone{}, ErrInvalidPhone
		}
	}
	// Parse accepts things like "12345"; only the numbering plans know.
	// IsValidNumber is GetRegionCodeForNumber and IsValidNumberForRegion:
	// called apart, the region is looked up once. A +1 number valid in the
	// US is the US's: it comes first among +1's regions (nanpFirst).
	region := ""
	if ok && nanpFirst && validInUS(input[2:], num) {
		region = "US"
	} else if region = phonenumbers.GetRegionCodeForNumber(num); !phonenumbers.IsValidNumberForRegion(num, region) {
		return parsedPhone{}, ErrInvalidPhone
	}
	e164 := input
	if !ok {
		e164 = phonenumbers.Format(num, phonenumbers.E164)
	}
	// The parser's metadata takes some German numbers of 16 digits; E.164
	// (and so Twilio) stops at 15.
	if len(e164) > maxE164Len {
		return parsedPhone{}, ErrInvalidPhone
	}
	return parsedPhone{e164, region}, nil
}

// validInUS answers phonenumbers.IsValidNumberForRegion(num, "US") for a
// +1 number whose national significant number is national, from the
// precompiled plan when there is one.
func validInUS(national string, num *phonenumbers.PhoneNumber) bool {
	if p := usPlan(); p != nil {
		return p.valid(national)
	}
	return phonenumbers.IsValidNumberForRegion(num, "US")
}

// nanpFirst holds when the metadata lists the US first among +1's regions,
// so GetRegionCodeForNumber answers US for every +1 number valid there.
var nanpFirst = slices.Index(phonenumbers.GetRegionCodesForCountryCode(1), "US") == 0

// parseNANP reads "+1" and ten digits, the form most numbers arrive in,
// without phonenumbers.Parse, whose regular expressions are half a parse's
// cost. It answers what the full parse answers for such input (a test
// compares the two over a large sample, and the fuzzer); ok is false for
// any other input, which takes the full parse.
func parseNANP(input string) (num *phonenumbers.PhoneNumber, ok bool) {
	if len(input) != 12 || input[0] != '+' || input[1] != '1' || input[2] < '2' {
		return nil, false
	}
	var national uint64
	for i := 2; i < len(input); i++ {
		c := input[i]
		if c < '0' || c > '9' {
			return nil, false
		}
		national = national*10 + uint64(c-'0')
	}
	countryCode := int32(1)
	return &phonenumbers.PhoneNumber{CountryCode: &countryCode, NationalNumber: &national}, true
}

// numberCache remembers inputs that were valid numbers. A flow names its
// number several times (register, resend, verify, the hub's topic) and a
// full parse costs about 15 µs; a hit costs a map lookup. It keys on the
// compact form (separators dropped), so "(415) 555-2671" and "415 555 2671"
// share an entry. Only valid results are kept, and the whole map is
// dropped when it holds maxBytes of keys and numbers, so a flood of junk
// or of distinct numbers cannot grow it.
type numberCache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	parsed   map[string]parsedPhone
}

// entryOverhead approximates a map entry's own cost beside its strings.
const entryOverhead = 64

func newNumberCache(maxBytes int) *numberCache {
	return &numberCache{maxBytes: maxBytes, parsed: make(map[string]parsedPhone)}
}

func (c *numberCache) parse(input, defaultRegion string) (parsedPhone, error) {
	key := compactPhone(strings.TrimSpace(input))
	c.mu.Lock()
	n, ok := c.parsed[key]
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := parsePhone(input, defaultRegion)
	if err != nil {
		return n, err
	}
	size := len(key) + len(n.e164) + len(n.country) + entryOverhead
	c.mu.Lock()
	if c.bytes+size > c.maxBytes {
		clear(c.parsed)
		c.bytes = 0
	}
	c.parsed[key] = n
	c.bytes += size
	c.mu.Unlock()
	return n, nil
}

// IsE164 reports whether s is written as E.164: a + and 7 to 15 digits.
func IsE164(s string) bool {
	return len(s) >= 8 && len(s) <= maxE164Len && s[0] == '+' && strings.Trim(s[1:], "0123456789") == ""
}

// compactPhone drops the separators people write in numbers and keeps
// everything else as it is, so two inputs share a compact form only when
// they differ in separators alone.
func compactPhone(raw string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(" -().", r) {
			return -1
		}
		return r
	}, raw)
}
