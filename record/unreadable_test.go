package record

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// The set of numbers already reported stays bounded; once cleared, a
// number may be reported again. Each report names the store and masks
// the number.
func TestReportedNumbersAreBounded(t *testing.T) {
	var out bytes.Buffer
	u := NewUnreadable("db", slog.New(slog.NewTextHandler(&out, nil)))
	for i := range 3 * maxReported {
		u.Report(fmt.Sprintf("+1415%07d", i))
		u.Report(fmt.Sprintf("+1415%07d", i))
		if len(u.seen) > maxReported {
			t.Fatalf("%d numbers remembered, want at most %d", len(u.seen), maxReported)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3*maxReported {
		t.Fatalf("%d log lines, want %d: one per number", len(lines), 3*maxReported)
	}
	if !strings.Contains(lines[0], "db: unreadable record") || strings.Contains(lines[0], "+14150000000") {
		t.Fatalf("line %q: want the store named and the number masked", lines[0])
	}
}
