package verify

import (
	"errors"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidPhone means the input is not a dialable phone number.
var ErrInvalidPhone = errors.New("invalid phone number")

// maxPhoneInput bounds what is handed to the parser; no written form of a
// real number comes close.
const maxPhoneInput = 64

// NormalizePhone turns any common written form of a number into E.164.
// Numbers without a leading + are read in defaultRegion (e.g. "US").
func NormalizePhone(input, defaultRegion string) (string, error) {
	input = strings.TrimSpace(input)
	if input == "" || len(input) > maxPhoneInput {
		return "", ErrInvalidPhone
	}
	num, err := phonenumbers.Parse(input, defaultRegion)
	if err != nil {
		return "", ErrInvalidPhone
	}
	// Parse accepts things like "12345"; only IsValidNumber knows the
	// numbering plans.
	if !phonenumbers.IsValidNumber(num) {
		return "", ErrInvalidPhone
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// numberCache remembers inputs that were valid numbers. A flow names its
// number several times (register, resend, verify, the hub's topic) and a
// full parse costs about 15 µs; a hit costs a map lookup. Only valid
// results are kept, and the whole map is dropped when full, so a flood of
// junk or of distinct numbers cannot grow it.
type numberCache struct {
	mu    sync.Mutex
	max   int
	e164s map[string]string
}

func newNumberCache(max int) *numberCache {
	return &numberCache{max: max, e164s: make(map[string]string)}
}

func (c *numberCache) normalize(input, defaultRegion string) (string, error) {
	c.mu.Lock()
	e164, ok := c.e164s[input]
	c.mu.Unlock()
	if ok {
		return e164, nil
	}
	e164, err := NormalizePhone(input, defaultRegion)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.e164s) >= c.max {
		clear(c.e164s)
	}
	c.e164s[input] = e164
	c.mu.Unlock()
	return e164, nil
}
