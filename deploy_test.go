package main

// Tests of the production kit (Dockerfile, deploy/): each file is checked
// against the code it deploys, so the kit cannot drift from the server.
// Tools that may be missing (systemd-analyze, promtool, nginx, caddy) are
// used where installed and skipped, with one line, where not.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// --- Dockerfile ---------------------------------------------------------------

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	line int    // where it starts
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func readDockerfile(t *testing.T) [][]dockerInstruction {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var all []dockerInstruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // comments may sit inside a continued instruction too
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		all = append(all, dockerInstruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	var stages [][]dockerInstruction // each starts with its FROM
	for _, in := range all {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	return stages
}

// instructionsOf returns the stage's instructions named cmd.
func instructionsOf(stage []dockerInstruction, cmd string) []dockerInstruction {
	var found []dockerInstruction
	for _, in := range stage {
		if in.cmd == cmd {
			found = append(found, in)
		}
	}
	return found
}

// dockerExecForm reads a JSON-array (exec form) argument list.
func dockerExecForm(t *testing.T, in dockerInstruction, args string) []string {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(args), &list); err != nil || len(list) == 0 {
		t.Fatalf("Dockerfile:%d: %s %s: want the exec form [\"...\"] (distroless has no shell): %v", in.line, in.cmd, args, err)
	}
	return list
}

// splitCommandLine splits a command line as a shell would for a plain command
// with quoted words, refusing anything that would make it more than one
// command (so "the go build line" is exactly what runs).
func splitCommandLine(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case c == '\'' || c == '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated %c in %q", c, s)
			}
			quoted := s[i+1 : i+1+end]
			if c == '"' && strings.ContainsAny(quoted, "$`\\") {
				return nil, fmt.Errorf("expansion in %q: keep the build line literal", quoted)
			}
			w.WriteString(quoted)
			inWord, i = true, i+1+end
		case strings.IndexByte(";&|<>`$()\\", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q in %q: want one plain command", c, s)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// dockerGoBuild is the Dockerfile's go build command, read from its RUN line.
type dockerGoBuild struct {
	line   int
	env    []string // NAME=value words before go
	args   []string // after "go": build and its flags and packages
	output string   // -o
}

func findDockerGoBuild(t *testing.T, stages [][]dockerInstruction) dockerGoBuild {
	t.Helper()
	var found []dockerGoBuild
	for _, stage := range stages[:len(stages)-1] {
		for _, in := range instructionsOf(stage, "RUN") {
			if !strings.Contains(in.args, "go build") {
				continue
			}
			words, err := splitCommandLine(in.args)
			if err != nil {
				t.Fatalf("Dockerfile:%d: %v", in.line, err)
			}
			b := dockerGoBuild{line: in.line}
			for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
				b.env, words = append(b.env, words[0]), words[1:]
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				t.Fatalf("Dockerfile:%d: RUN %s: want [NAME=value...] go build ...", in.line, in.args)
			}
			b.args = words[1:]
			for i, a := range b.args {
				switch {
				case a == "-o" && i+1 < len(b.args):
					b.output = b.args[i+1]
				case strings.HasPrefix(a, "-o="):
					b.output = strings.TrimPrefix(a, "-o=")
				}
			}
			found = append(found, b)
		}
	}
	if len(found) != 1 {
		t.Fatalf("Dockerfile: %d RUN lines with go build in the build stages, want exactly one", len(found))
	}
	return found[0]
}

// buildFlagValue is the value of -name=v or -name v in args.
func buildFlagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func TestDockerfileBuildsTheBinaryWithTheFlagsItNames(t *testing.T) {
	stages := readDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]

	// The build stage's Go is the go.mod's.
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil {
		t.Fatal("go.mod has no go line")
	}
	from := strings.Fields(build[0].args)
	if want := "golang:" + string(goLine[1]); from[0] != want && !regexp.MustCompile(`^`+regexp.QuoteMeta(want)+`[.-]`).MatchString(from[0]) {
		t.Errorf("Dockerfile:%d: build stage FROM %s, want %s (go.mod says go %s)", build[0].line, from[0], want, goLine[1])
	}

	// One go build line with the flags that make a small static binary.
	gb := findDockerGoBuild(t, stages)
	if !slices.Contains(gb.env, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile:%d: go build without CGO_ENABLED=0: the binary would need a libc distroless/static lacks", gb.line)
	}
	if !slices.Contains(gb.args, "-trimpath") {
		t.Errorf("Dockerfile:%d: go build without -trimpath", gb.line)
	}
	if ld, _ := buildFlagValue(gb.args, "-ldflags"); !slices.Contains(strings.Fields(ld), "-s") || !slices.Contains(strings.Fields(ld), "-w") {
		t.Errorf("Dockerfile:%d: go build -ldflags=%q, want -s -w", gb.line, ld)
	}
	if gb.output == "" || gb.args[len(gb.args)-1] != "." {
		t.Fatalf("Dockerfile:%d: go build %v: want -o <path> and the main package . last", gb.line, gb.args)
	}

	// The final stage: the binary, a volume, the port, not root, a health
	// check the image can run.
	base := strings.Fields(final[0].args)[0]
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("Dockerfile:%d: final stage FROM %s, want distroless/static or scratch", final[0].line, base)
	}
	users := instructionsOf(final, "USER")
	if len(users) == 0 {
		t.Error("Dockerfile: the final stage has no USER: it would run as root")
	} else if u := users[len(users)-1]; slices.Contains([]string{"root", "0"}, strings.Split(u.args, ":")[0]) {
		t.Errorf("Dockerfile:%d: USER %s: want a non-root user (nonroot, 65532)", u.line, u.args)
	}
	entry := instructionsOf(final, "ENTRYPOINT")
	if len(entry) != 1 {
		t.Fatalf("Dockerfile: %d ENTRYPOINTs in the final stage, want 1", len(entry))
	}
	binary := dockerExecForm(t, entry[0], entry[0].args)[0]
	copied := false
	for _, c := range instructionsOf(final, "COPY") {
		f := strings.Fields(c.args)
		copied = copied || slices.Contains(f, "--from=build") && slices.Contains(f, gb.output) && f[len(f)-1] == binary
	}
	if !copied {
		t.Errorf("Dockerfile: no COPY --from=build %s %s in the final stage (the ENTRYPOINT)", gb.output, binary)
	}
	hc := instructionsOf(final, "HEALTHCHECK")
	if len(hc) != 1 {
		t.Errorf("Dockerfile: %d HEALTHCHECKs in the final stage, want 1", len(hc))
	} else if _, cmd, ok := strings.Cut(hc[0].args, "CMD "); !ok {
		t.Errorf("Dockerfile:%d: HEALTHCHECK %s: want [options] CMD [...]", hc[0].line, hc[0].args)
	} else if probe := dockerExecForm(t, hc[0], cmd); probe[0] != binary {
		t.Errorf("Dockerfile:%d: HEALTHCHECK runs %s: the image has only %s (no curl, wget or shell)", hc[0].line, probe[0], binary)
	}
	volumes, exposed := instructionsOf(final, "VOLUME"), instructionsOf(final, "EXPOSE")
	if len(volumes) != 1 || len(exposed) != 1 {
		t.Fatalf("Dockerfile: final stage has %d VOLUME and %d EXPOSE, want one each", len(volumes), len(exposed))
	}
	volume := strings.Trim(volumes[0].args, `[]" `)

	// CMD is what run() will be given: a command it knows, and flags that
	// parse, listen on the exposed port and keep the database in the volume.
	cmds := instructionsOf(final, "CMD")
	if len(cmds) != 1 {
		t.Fatalf("Dockerfile: %d CMDs in the final stage, want 1", len(cmds))
	}
	args := dockerExecForm(t, cmds[0], cmds[0].args)
	if !strings.HasPrefix(args[0], "-") {
		if args[0] != "serve" {
			t.Fatalf("Dockerfile: CMD starts with command %q, want serve", args[0])
		}
		args = args[1:]
	}
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("Dockerfile: CMD flags %v: %v", args, err)
	}
	if _, port, err := net.SplitHostPort(cfg.listen.addr); err != nil || port != strings.Fields(exposed[0].args)[0] {
		t.Errorf("Dockerfile: the server listens on %q, EXPOSE %s", cfg.listen.addr, exposed[0].args)
	}
	if filepath.Dir(cfg.listen.dbPath) != volume {
		t.Errorf("Dockerfile: the database %s is not in the volume %s", cfg.listen.dbPath, volume)
	}

	if testing.Short() {
		t.Skip("-short: not running the Dockerfile's go build")
	}
	// Build as the Dockerfile does, into a temporary directory.
	out := filepath.Join(t.TempDir(), "verifier")
	args = slices.Clone(gb.args)
	for i, a := range args {
		if a == "-o" {
			args[i+1] = out
		} else if strings.HasPrefix(a, "-o=") {
			args[i] = "-o=" + out
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(append(os.Environ(), "GOOS=linux"), gb.env...) // the image's build stage is Linux
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatalf("the built binary is not ELF: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if f.Section(".interp") != nil || f.Section(".dynamic") != nil {
		t.Error("the binary has an .interp or .dynamic section: it is dynamically linked")
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -ldflags=-s did not take")
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := os.Getwd(); bytes.Contains(data, []byte(wd+string(filepath.Separator))) {
		t.Errorf("the binary names the build directory %s: -trimpath did not take", wd)
	}
}

// --- systemd ------------------------------------------------------------------

// readUnitDirectives reads a unit file: section -> directive -> values (a
// directive may be given more than once).
func readUnitDirectives(t *testing.T, data []byte) map[string]map[string][]string {
	t.Helper()
	units := map[string]map[string][]string{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			units[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("deploy/verifier.service:%d: %q is not key=value in a section", i+1, line)
			}
			units[section][strings.TrimSpace(k)] = append(units[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return units
}

func TestSystemdUnitVerifies(t *testing.T) {
	data, err := os.ReadFile("deploy/verifier.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := readUnitDirectives(t, data)
	svc := unit["Service"]
	for key, want := range map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "verifier",
		"WorkingDirectory":        "/var/lib/verifier",
		"EnvironmentFile":         "-/etc/verifier/env",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallFilter":        "@system-service",
		"LimitNOFILE":             "65536",
		"Restart":                 "on-failure",
		"KillSignal":              "SIGTERM",
		"TimeoutStopSec":          "30",
	} {
		if !slices.Contains(svc[key], want) {
			t.Errorf("deploy/verifier.service: [Service] %s=%v, want %s", key, svc[key], want)
		}
	}
	if len(unit["Install"]["WantedBy"]) == 0 {
		t.Error("deploy/verifier.service: no [Install] WantedBy: systemctl enable would do nothing")
	}

	// Stopping: systemd waits longer than the server's own shutdown.
	if stop, err := time.ParseDuration(svc["TimeoutStopSec"][0] + "s"); err != nil || stop <= shutdownBudget {
		t.Errorf("deploy/verifier.service: TimeoutStopSec=%s, want more than the server's shutdown budget %v", svc["TimeoutStopSec"][0], shutdownBudget)
	}
	// The descriptors: more than the reserve, or -max-connections is tiny.
	if n, _ := strconv.Atoi(svc["LimitNOFILE"][0]); n <= fdReserve {
		t.Errorf("deploy/verifier.service: LimitNOFILE=%d leaves no sockets after the %d reserved", n, fdReserve)
	}

	// ExecStart: the binary, serve, flags that parse; on loopback behind a
	// trusted proxy on loopback, the database in the state directory.
	if len(svc["ExecStart"]) != 1 {
		t.Fatalf("deploy/verifier.service: %d ExecStart lines, want 1", len(svc["ExecStart"]))
	}
	words, err := splitCommandLine(svc["ExecStart"][0])
	if err != nil || len(words) < 2 || words[0] != "/usr/local/bin/verifier" || words[1] != "serve" {
		t.Fatalf("deploy/verifier.service: ExecStart=%s: want /usr/local/bin/verifier serve ... (%v)", svc["ExecStart"][0], err)
	}
	cfg, err := parseConfig(words[2:], func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("deploy/verifier.service: ExecStart flags: %v", err)
	}
	if !isLoopback(cfg.listen.addr) {
		t.Errorf("deploy/verifier.service: -addr=%s: want loopback, behind the proxy", cfg.listen.addr)
	}
	if !slices.ContainsFunc(cfg.listen.trusted, func(p netip.Prefix) bool { return p.Contains(netip.MustParseAddr("127.0.0.1")) }) {
		t.Errorf("deploy/verifier.service: -trusted-proxies=%q does not trust the proxy on 127.0.0.1", cfg.listen.proxies)
	}
	if dir := filepath.Dir(cfg.listen.dbPath); dir != "/var/lib/"+svc["StateDirectory"][0] || dir != svc["WorkingDirectory"][0] {
		t.Errorf("deploy/verifier.service: -db=%s is not in the state directory", cfg.listen.dbPath)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: skipping the unit check")
	}
	// The same unit, run by an executable that exists here (this test
	// binary), so verify checks everything but the install path.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	patched := bytes.Replace(data, []byte("ExecStart=/usr/local/bin/verifier "), []byte("ExecStart="+self+" "), 1)
	path := filepath.Join(t.TempDir(), "verifier.service")
	if err := os.WriteFile(path, patched, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "verifier.service") { // other units' complaints are not ours
			problems = append(problems, line)
		}
	}
	if err != nil || len(problems) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, strings.Join(problems, "\n"))
	}
	if len(out) > 0 {
		t.Logf("systemd-analyze verify said:\n%s", out)
	}
}

// --- Prometheus and Grafana -------------------------------------------------------

// exportedMetrics are the series names the metrics package serves:
// every name it registers, and a histogram's _bucket, _count and _sum.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("metrics/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("metrics/*.go: %v", err)
	}
	names := map[string]bool{}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`Name:\s*"(verifier_\w+)"`).FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
		for _, m := range regexp.MustCompile(`HistogramOpts\{\s*Name:\s*"(verifier_\w+)"`).FindAllSubmatch(src, -1) {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				names[string(m[1])+suffix] = true
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("metrics/*.go registers no verifier_ metric")
	}
	return names
}

var kitMetricName = regexp.MustCompile(`\bverifier_[a-z0-9_]+`)

// checkMetricNames fails for each verifier_ series text uses that the
// server does not serve.
func checkMetricNames(t *testing.T, where, text string, served map[string]bool) int {
	t.Helper()
	used := kitMetricName.FindAllString(text, -1)
	slices.Sort(used)
	for _, name := range slices.Compact(slices.Clone(used)) {
		if !served[name] {
			t.Errorf("%s uses %s, which metrics/ does not serve", where, name)
		}
	}
	return len(used)
}

type grafanaVariable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"` // a string for a datasource variable
}

// grafanaDashboard is the part of a Grafana dashboard the tests read.
type grafanaDashboard struct {
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ W, H int } `json:"gridPos"`
		Targets []struct {
			Expr       string `json:"expr"`
			RefID      string `json:"refId"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

func readGrafanaDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	data, err := os.ReadFile("deploy/grafana/verifier.json")
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("deploy/grafana/verifier.json: %v", err)
	}
	return d
}

func TestAlertRulesPassPromtool(t *testing.T) {
	rules, err := os.ReadFile("deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	// Every metric the kit queries is one the server serves.
	served := exportedMetrics(t)
	if n := checkMetricNames(t, "deploy/prometheus/alerts.yml", string(rules), served); n == 0 {
		t.Error("deploy/prometheus/alerts.yml queries no verifier_ metric")
	}
	for _, p := range readGrafanaDashboard(t).Panels {
		for _, target := range p.Targets {
			checkMetricNames(t, fmt.Sprintf("deploy/grafana/verifier.json panel %q", p.Title), target.Expr, served)
		}
	}

	// Every alert waits (for:), says how bad (severity) and what it means.
	alerts := regexp.MustCompile(`(?m)^\s*- alert:`).Split(string(rules), -1)[1:]
	if len(alerts) == 0 {
		t.Fatal("deploy/prometheus/alerts.yml has no alert")
	}
	for _, a := range alerts {
		name, _, _ := strings.Cut(strings.TrimSpace(a), "\n")
		for _, key := range []string{"expr:", "for:", "severity:", "summary:", "description:"} {
			if !strings.Contains(a, key) {
				t.Errorf("alert %s has no %s", name, strings.TrimSuffix(key, ":"))
			}
		}
	}
	if !strings.Contains(string(rules), `up{job="verifier"} == 0`) {
		t.Error(`deploy/prometheus/alerts.yml: no alert on up{job="verifier"} == 0`)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: skipping promtool check rules")
	}
	for _, args := range [][]string{
		{"check", "rules", "deploy/prometheus/alerts.yml"},
		{"test", "rules", "deploy/prometheus/alerts_test.yml"}, // each alert fires when it should
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestGrafanaDashboardPanelsQueryPrometheus(t *testing.T) {
	d := readGrafanaDashboard(t)
	if d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard title %q, schemaVersion %d: want a title and schema 36 or later", d.Title, d.SchemaVersion)
	}
	hasDS := slices.ContainsFunc(d.Templating.List, func(v grafanaVariable) bool {
		return v.Name == "DS_PROMETHEUS" && v.Type == "datasource" && v.Query == "prometheus"
	})
	if !hasDS {
		t.Error("dashboard: no templating variable DS_PROMETHEUS of type datasource (prometheus)")
	}
	if len(d.Panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q has no size (gridPos)", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource is not ${DS_PROMETHEUS}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no target", p.Title)
		}
		for _, target := range p.Targets {
			if strings.TrimSpace(target.Expr) == "" || target.RefID == "" {
				t.Errorf("panel %q: a target without expr or refId", p.Title)
			}
			if target.Datasource != nil && target.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: a target's datasource is not ${DS_PROMETHEUS}", p.Title)
			}
			exprs = append(exprs, target.Expr)
		}
	}

	// With promtool, every query parses: as recording rules, the
	// dashboard's variables given plain values.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: the queries' syntax is not checked")
		return
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", "verifier", "$instance", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(vars.Replace(e)) // JSON strings are YAML strings
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries do not parse: %v\n%s", err, out)
	}
}

// --- reverse proxies ------------------------------------------------------------

func TestProxyExamplesForwardTheClientAndTheWebSocket(t *testing.T) {
	nginxConf, err := os.ReadFile("deploy/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	caddyfile, err := os.ReadFile("deploy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"deploy/nginx.conf": string(nginxConf), "deploy/Caddyfile": string(caddyfile)} {
		for _, want := range []string{"verify.example.com", "127.0.0.1:3000", "-trusted-proxies=127.0.0.1/32", "X-Forwarded-For"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s does not mention %s", name, want)
			}
		}
	}
	for _, want := range []string{
		"proxy_http_version 1.1;",
		"proxy_set_header Upgrade           $http_upgrade;",
		"proxy_set_header Connection        $connection_upgrade;",
		"proxy_set_header X-Forwarded-For   $remote_addr;", // overwritten, not appended to
		"proxy_set_header Host              $host;",        // the WebSocket's origin check
		"proxy_read_timeout 1h;",
	} {
		if !bytes.Contains(nginxConf, []byte(want)) {
			t.Errorf("deploy/nginx.conf has no %q", want)
		}
	}
	// A location with a proxy_set_header of its own inherits none of the
	// server block's: keep them all in the server block.
	uncommented := regexp.MustCompile(`#[^\n]*`).ReplaceAll(nginxConf, nil)
	for _, loc := range regexp.MustCompile(`(?m)^\s*location[^{\n]*\{[^}]*\}`).FindAll(uncommented, -1) {
		if bytes.Contains(loc, []byte("proxy_set_header")) {
			t.Errorf("deploy/nginx.conf: %s sets headers, so it drops the server block's X-Forwarded-For and Upgrade", bytes.TrimSpace(bytes.SplitN(loc, []byte("{"), 2)[0]))
		}
	}

	if nginx, err := exec.LookPath("nginx"); err != nil {
		t.Log("nginx not installed: deploy/nginx.conf is not checked with nginx -t")
	} else {
		dir := t.TempDir()
		cert, key := kitSelfSignedCert(t, dir)
		site := strings.NewReplacer(
			"/etc/letsencrypt/live/verify.example.com/fullchain.pem", cert,
			"/etc/letsencrypt/live/verify.example.com/privkey.pem", key).Replace(string(nginxConf))
		writeKitFile(t, filepath.Join(dir, "site.conf"), site)
		writeKitFile(t, filepath.Join(dir, "nginx.conf"), fmt.Sprintf(
			"pid %[1]s/nginx.pid;\nerror_log %[1]s/error.log;\nevents {}\nhttp { access_log off; include %[1]s/site.conf; }\n", dir))
		if out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
			t.Errorf("nginx -t: %v\n%s", err, out)
		}
	}
	if caddy, err := exec.LookPath("caddy"); err != nil {
		t.Log("caddy not installed: deploy/Caddyfile is not checked with caddy validate")
	} else {
		cmd := exec.Command(caddy, "validate", "--adapter", "caddyfile", "--config", "deploy/Caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("caddy validate: %v\n%s", err, out)
		} else if bytes.Contains(out, []byte(`"level":"warn"`)) {
			t.Errorf("caddy validate warns:\n%s", out)
		}
	}
}

func writeKitFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// kitSelfSignedCert writes a certificate and key for nginx -t to load.
func kitSelfSignedCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "verify.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"verify.example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeKitFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeKitFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return certPath, keyPath
}
