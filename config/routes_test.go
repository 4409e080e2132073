package config

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/logcapturer/log_capturer_go/configs"
	"github.com/logcapturer/log_capturer_go/ingest/multiline"
)

// loadRoutes loads the embedded main config with content as the
// file-routing file.
func loadRoutes(t *testing.T, content string) (*Config, string, error) {
	t.Helper()
	fp := writeFile(t, t.TempDir(), "routes.yml", content)
	c, err := Load(LoadOptions{FileConfigFile: fp, Env: envMap()})
	return c, fp, err
}

func TestFilePipelineDecodes(t *testing.T) {
	c, _, err := loadRoutes(t, `
routes:
  - name: mysql-slow
    match: ["/var/log/mysql/*slow*.log", "/srv/**/slow.log"]
    labels: {job: mysql, log_type: slow}
    multiline: {preset: mysql_slow}
  - name: custom
    match: [/var/log/app/*.log]
    multiline:
      mode: continue
      pattern: '^\s'
      negate: false
      max_lines: 50
      max_bytes: 64KiB
      flush_timeout: 250ms
  - name: labels-only
    match: [/var/log/x.log]
    labels: {job: x}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := FilePipeline{Routes: []FileRoute{
		{Name: "mysql-slow", Match: []string{"/var/log/mysql/*slow*.log", "/srv/**/slow.log"},
			Labels: map[string]string{"job": "mysql", "log_type": "slow"}, Multiline: MultilineConfig{Preset: "mysql_slow"}},
		{Name: "custom", Match: []string{"/var/log/app/*.log"},
			Multiline: MultilineConfig{Mode: "continue", Pattern: `^\s`, MaxLines: 50, MaxBytes: 64 * KiB, FlushTimeout: 250 * time.Millisecond}},
		{Name: "labels-only", Match: []string{"/var/log/x.log"}, Labels: map[string]string{"job": "x"}},
	}}
	if !reflect.DeepEqual(c.FilePipeline, want) {
		t.Fatalf("decoded\n %+v\nwant\n %+v", c.FilePipeline, want)
	}
	mc := c.FilePipeline.Routes[1].Multiline.Config()
	if mc != (multiline.Config{Mode: "continue", Pattern: `^\s`, MaxLines: 50, MaxBytes: 64 << 10, FlushTimeout: 250 * time.Millisecond}) {
		t.Errorf("multiline.Config = %+v", mc)
	}
	if c.FilePipeline.Routes[2].Multiline.Config().Enabled() {
		t.Errorf("a route without multiline must not enable it")
	}

	cl := c.Clone()
	cl.FilePipeline.Routes[0].Match[0] = "changed"
	cl.FilePipeline.Routes[0].Labels["job"] = "changed"
	if c.FilePipeline.Routes[0].Match[0] == "changed" || c.FilePipeline.Routes[0].Labels["job"] == "changed" {
		t.Errorf("Clone shares routes with the original")
	}
}

func TestFilePipelineEmpty(t *testing.T) {
	for name, content := range map[string]string{
		"empty":          "",
		"null":           "~\n",
		"empty mapping":  "{}\n",
		"empty list":     "routes: []\n",
		"all commented":  "routes:\n  # - name: x\n  #   match: [a]\n",
		"comments only":  "# nothing\n",
		"embedded again": string(configs.FilePipelineYAML()),
	} {
		t.Run(name, func(t *testing.T) {
			c, _, err := loadRoutes(t, content)
			if err != nil {
				t.Fatal(err)
			}
			if c.FilePipeline.Routes != nil {
				t.Errorf("routes = %+v, want none", c.FilePipeline.Routes)
			}
		})
	}
}

// The examples shipped commented out in configs/file_pipeline.yml are
// valid once uncommented.
func TestShippedRouteExamplesValid(t *testing.T) {
	var b strings.Builder
	uncomment := regexp.MustCompile(`^  # ( *)(- name:|match:|labels:|multiline:)`)
	n := 0
	for line := range strings.SplitSeq(string(configs.FilePipelineYAML()), "\n") {
		if uncomment.MatchString(line) {
			line = "  " + strings.TrimPrefix(line, "  # ")
			n++
		}
		b.WriteString(line + "\n")
	}
	c, fp, err := loadRoutes(t, b.String())
	if err != nil {
		t.Fatalf("uncommented examples: %v\n%s", err, b.String())
	}
	presets := map[string]bool{}
	for _, r := range c.FilePipeline.Routes {
		presets[r.Multiline.Preset] = true
	}
	if len(c.FilePipeline.Routes) != 3 || n != 12 || !presets["sip"] || !presets["mysql_slow"] || !presets["mysql_error"] {
		t.Errorf("want the sip, mysql_slow and mysql_error examples (12 lines), got %d lines: %+v (%s)", n, c.FilePipeline.Routes, fp)
	}
}

func TestFilePipelineErrors(t *testing.T) {
	tests := map[string]struct {
		content string
		want    []string // fragments; the file path is checked for every case
	}{
		"unknown top key": {"routes: []\nroute: []\n",
			[]string{`unknown key "route" (line 2)`}},
		"routes not a list": {"routes: {a: 1}\n",
			[]string{"routes: want a list of routes, got a mapping (line 1)"}},
		"route not a mapping": {"routes:\n  - x\n",
			[]string{"routes[0]: want a mapping", "(line 2)"}},
		"unknown route key": {"routes:\n  - name: a\n    match: [x]\n    lables: {a: b}\n",
			[]string{`unknown key "routes[0].lables" (line 4)`}},
		"unknown multiline key": {"routes:\n  - name: a\n    match: [x]\n    multiline:\n      preset: sip\n      timeout: 1s\n",
			[]string{`unknown key "routes[0].multiline.timeout" (line 6)`}},
		"wrong type": {"routes:\n  - name: a\n    match: x\n",
			[]string{"routes[0].match: want a list of strings", "(line 3)"}},
		"bad duration": {"routes:\n  - name: a\n    match: [x]\n    multiline: {preset: sip, flush_timeout: 10}\n",
			[]string{"routes[0].multiline.flush_timeout: invalid duration", "(line 4)"}},
		"no name": {"routes:\n  - match: [x]\n",
			[]string{"routes[0].name: required (line 2)"}},
		"duplicate name": {"routes:\n  - name: a\n    match: [x]\n  - name: a\n    match: [y]\n",
			[]string{`routes[1].name: "a" is also the name of routes[0] (line 4)`}},
		"no match": {"routes:\n  - name: a\n",
			[]string{"routes[0].match: at least one glob required (line 2)"}},
		"bad glob": {"routes:\n  - name: a\n    match: [ok, \"x[\"]\n",
			[]string{`routes[0].match[1]: invalid pattern "x["`, "(line 3)"}},
		"bad label name": {"routes:\n  - name: a\n    match: [x]\n    labels: {a-b: c}\n",
			[]string{`routes[0].labels: invalid label name "a-b"`, "(line 4)"}},
		"empty label value": {"routes:\n  - name: a\n    match: [x]\n    labels:\n      job: ''\n",
			[]string{"routes[0].labels.job: label value must be non-empty UTF-8 (line 5)"}},
		"source label": {"routes:\n  - name: a\n    match: [x]\n    labels: {filename: c}\n",
			[]string{`label "filename" is set by the file source (line 4)`}},
		"bad preset": {"routes:\n  - name: a\n    match: [x]\n    multiline:\n      preset: mysql\n",
			[]string{`routes[0].multiline.preset: unknown preset "mysql"`, "mysql_slow", "(line 5)"}},
		"preset and pattern": {"routes:\n  - name: a\n    match: [x]\n    multiline: {preset: sip, pattern: x}\n",
			[]string{"routes[0].multiline.preset:", "leave multiline.mode and multiline.pattern empty"}},
		"bad regexp": {"routes:\n  - name: a\n    match: [x]\n    multiline:\n      mode: start\n      pattern: '(a'\n",
			[]string{`routes[0].multiline.pattern: invalid regexp "(a"`, "(line 6)"}},
		"bad mode": {"routes:\n  - name: a\n    match: [x]\n    multiline: {mode: begin, pattern: x}\n",
			[]string{`routes[0].multiline.mode: "begin"`}},
		"limits only": {"routes:\n  - name: a\n    match: [x]\n    multiline:\n      max_lines: 5\n",
			[]string{"routes[0].multiline: set preset", "(line 5)"}},
		"max_lines range": {"routes:\n  - name: a\n    match: [x]\n    multiline: {preset: java, max_lines: -1}\n",
			[]string{"routes[0].multiline.max_lines: -1: must be in [1, 100000]"}},
		"entry over wal.max_entry_bytes": {"routes:\n  - name: a\n    match: [x]\n    multiline:\n      preset: java\n      max_bytes: 8MiB\n",
			[]string{"routes[0].multiline.max_bytes: 8MiB plus 16KiB of record overhead exceeds wal.max_entry_bytes (512KiB)", "(line 6)"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, fp, err := loadRoutes(t, tc.content)
			wantErr(t, err, append([]string{"config: " + fp + ": "}, tc.want...)...)
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		_, _, err := loadRoutes(t, "routes:\n  - name: a\n  - name: a\n    match: [x]\n    multiline: {preset: nope}\n")
		if n := countErrors(err); n != 3 {
			t.Errorf("%d errors, want 3:\n%v", n, err)
		}
	})
}

// SSW_FILE_CONFIG names the file the errors blame, and `config check`
// (Load) fails on a bad route.
func TestFilePipelineFromEnv(t *testing.T) {
	fp := writeFile(t, t.TempDir(), "fp.yml", "routes:\n  - name: a\n    match: [x]\n    multiline: {preset: nope}\n")
	_, _, err := loadYAML(t, "", EnvFileConfigFile, fp)
	wantErr(t, err, "config: "+fp+": routes[0].multiline.preset")
	ok := writeFile(t, t.TempDir(), "fp.yml", "routes:\n  - name: a\n    match: [x]\n")
	c := mustLoadYAML(t, "", EnvFileConfigFile, ok)
	if len(c.FilePipeline.Routes) != 1 || c.Origin.FileConfigFile != ok {
		t.Errorf("routes %+v from %q", c.FilePipeline.Routes, c.Origin.FileConfigFile)
	}
}
