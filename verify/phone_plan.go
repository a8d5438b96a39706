package verify

import (
	"regexp"
	"slices"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// numberPlan is one region's validity rules from libphonenumber's own
// metadata, with each pattern compiled once. phonenumbers.
// IsValidNumberForRegion builds "^(?:" + pattern + ")$" twice per kind of
// number on every call, finds each compiled form by hashing that string
// (the US fixed-line pattern alone is hundreds of bytes) and matches it
// twice: 1.6-2.7% of the server's CPU with a fresh number per flow.
// BenchmarkUSValidity: 10-18 us and 22 allocations there, 3.1-3.7 us and
// none here. valid answers what it answers: a test compares the two both
// ways over every area code and a large random sample, and the fuzzer
// compares the whole parse with libphonenumber's.
type numberPlan struct {
	general numberDesc
	types   []numberDesc // the kinds of number; matching one is valid
}

// numberDesc is one kind of number: the lengths it may have (none listed:
// any) and the pattern it matches whole.
type numberDesc struct {
	lengths []int32
	pattern *regexp.Regexp
}

func (d numberDesc) matches(national string) bool {
	if d.pattern == nil {
		return false
	}
	if len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(national))) {
		return false
	}
	return d.pattern.MatchString(national)
}

// valid reports whether a national significant number is valid in the
// region: it matches the general description and one kind of number.
// getNumberTypeHelper tells the kinds apart; any kind but UNKNOWN is valid.
func (p *numberPlan) valid(national string) bool {
	if !p.general.matches(national) {
		return false
	}
	for _, d := range p.types {
		if d.matches(national) {
			return true
		}
	}
	return false
}

// usPlan is the US plan, loaded on first use; nil if the metadata has none
// (then the caller asks libphonenumber).
var usPlan = sync.OnceValue(func() *numberPlan { return loadPlan("US") })

func loadPlan(region string) *numberPlan {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil
	}
	for _, m := range coll.GetMetadata() {
		if m.GetId() != region {
			continue
		}
		p := &numberPlan{general: compileDesc(m.GetGeneralDesc())}
		for _, d := range []*phonenumbers.PhoneNumberDesc{m.GetPremiumRate(), m.GetTollFree(), m.GetSharedCost(),
			m.GetVoip(), m.GetPersonalNumber(), m.GetPager(), m.GetUan(), m.GetVoicemail(), m.GetFixedLine(), m.GetMobile()} {
			p.types = append(p.types, compileDesc(d))
		}
		return p
	}
	return nil
}

// compileDesc compiles a description's pattern as libphonenumber matches
// it, whole. A missing or empty one matches no number, as there.
func compileDesc(d *phonenumbers.PhoneNumberDesc) numberDesc {
	if d == nil || d.GetNationalNumberPattern() == "" {
		return numberDesc{}
	}
	re, err := regexp.Compile("^(?:" + d.GetNationalNumberPattern() + ")$")
	if err != nil {
		return numberDesc{}
	}
	return numberDesc{lengths: d.GetPossibleLength(), pattern: re}
}
