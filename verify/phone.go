package verify

import (
	"errors"
	"strings"

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
