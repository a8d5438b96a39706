package stats

import (
	"testing"
	"time"
)

func TestTheBoardCountsTheLastHourByMinute(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 30, 0, time.UTC)
	b := New(Caps{PerMinute: 60, PerHour: 1000}, func() time.Time { return now })
	b.Sent()
	b.Sent()
	b.Verified()
	b.Failed("US", "30003")
	now = now.Add(time.Minute)
	b.Sent()
	b.Failed("US", "30003")
	b.Failed("GB", "")
	s := b.Snapshot()
	if s.Sent != 3 || s.Verified != 1 || s.Failed != 3 || len(s.Minutes) != 60 {
		t.Fatalf("snapshot %+v", s)
	}
	if last := s.Minutes[59]; last.Sent != 1 || last.Failed != 2 || s.Minutes[58].Sent != 2 {
		t.Fatalf("minutes end %+v %+v", s.Minutes[58], last)
	}
	if s.Failures[0] != (FailureCount{"US", "30003", 2}) || s.Failures[1] != (FailureCount{"GB", "none", 1}) {
		t.Fatalf("failures %+v", s.Failures)
	}
	if s.Spend.Minute != (Use{1, 60}) || s.Spend.Hour != (Use{3, 1000}) || s.Conversion < 0.33 || s.Conversion > 0.34 {
		t.Fatalf("spend %+v conversion %v", s.Spend, s.Conversion)
	}
	now = now.Add(time.Hour) // all of it has passed
	if s := b.Snapshot(); s.Sent != 0 || len(s.Failures) != 0 {
		t.Fatalf("an hour later: %+v", s)
	}
}
