package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// latencies collects durations and reports percentiles.
type latencies []time.Duration

func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

type summary struct {
	P50, P90, P99, Max float64 // milliseconds
}

func (l latencies) summary() summary {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return summary{ms(l.percentile(.5)), ms(l.percentile(.9)), ms(l.percentile(.99)), ms(l.percentile(1))}
}

// procStats reads a process's CPU seconds and resident memory from /proc.
type procStats struct {
	CPUSeconds float64
	RSSBytes   int64
}

func readProc(pid int) (procStats, error) {
	var ps procStats
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ps, err
	}
	// Fields after the command name, which may hold spaces, start after ')'.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	ps.CPUSeconds = (utime + stime) / 100 // USER_HZ is 100 on Linux
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ps, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			ps.RSSBytes = kb * 1024
		}
	}
	return ps, nil
}
