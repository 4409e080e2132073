package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/logcapturer/log_capturer_go/configs"
	"github.com/logcapturer/log_capturer_go/ingest/multiline"
)

// FilePipeline is the file-routing file (configs/file_pipeline.yml,
// $SSW_FILE_CONFIG): which files get which labels and multiline assembly.
//
//	routes:
//	  - name: mysql-slow
//	    match: ["/var/log/mysql/*slow*.log"]
//	    labels: {job: mysql, log_type: slow}
//	    multiline: {preset: mysql_slow}
//
// The first route whose match globs match a file's path wins. A route's
// globs are followed in addition to files_config.include, and
// files_config.exclude applies to them too. A file no route matches keeps
// files_config.labels and one record per line.
type FilePipeline struct {
	Routes []FileRoute `yaml:"routes"`
}

// FileRoute is one route of the file-routing file.
type FileRoute struct {
	// Name identifies the route in errors and logs; unique.
	Name string `yaml:"name"`
	// Match lists globs, files_config.include's syntax ("**" allowed).
	Match []string `yaml:"match"`
	// Labels are merged over files_config.labels for the route's files.
	Labels map[string]string `yaml:"labels"`
	// Multiline groups lines into entries; absent: one record per line.
	Multiline MultilineConfig `yaml:"multiline"`
}

// MultilineConfig is a route's multiline block (package ingest/multiline
// documents the modes and presets). Zero limits take the package defaults.
type MultilineConfig struct {
	// Preset is sip, java, python, go, mysql_slow or mysql_error; it sets
	// mode and pattern, which must then be left out.
	Preset  string `yaml:"preset"`
	Mode    string `yaml:"mode"` // start|continue|end
	Pattern string `yaml:"pattern"`
	Negate  bool   `yaml:"negate"`
	// MaxLines and MaxBytes split longer entries (every piece flagged
	// partial); FlushTimeout emits a pending entry this long after its
	// first line when nothing completed it.
	MaxLines     int           `yaml:"max_lines"`
	MaxBytes     ByteSize      `yaml:"max_bytes"`
	FlushTimeout time.Duration `yaml:"flush_timeout"`
}

// Config returns the block as the multiline package's configuration. The
// zero block is a disabled Config.
func (m MultilineConfig) Config() multiline.Config {
	return multiline.Config{
		Mode:         m.Mode,
		Pattern:      m.Pattern,
		Negate:       m.Negate,
		MaxLines:     m.MaxLines,
		MaxBytes:     int(m.MaxBytes.Bytes()),
		FlushTimeout: m.FlushTimeout,
		Preset:       m.Preset,
	}
}

// clone returns a deep copy: no slice or map shared with fp.
func (fp FilePipeline) clone() FilePipeline {
	if fp.Routes == nil {
		return fp
	}
	out := FilePipeline{Routes: make([]FileRoute, len(fp.Routes))}
	for i, r := range fp.Routes {
		r.Match = slices.Clone(r.Match)
		r.Labels = maps.Clone(r.Labels)
		out.Routes[i] = r
	}
	return out
}

// filePipelineSource names the file-routing file in errors.
func filePipelineSource(path string) string {
	if path == "" {
		return "embedded:configs/" + configs.FilePipelineName
	}
	return path
}

// loadFilePipeline decodes and validates cfg.Origin.FileConfigYAML into
// cfg.FilePipeline. Every error names the file, the key and its line.
func (c *Config) loadFilePipeline() []error {
	source := filePipelineSource(c.Origin.FileConfigFile)
	fp, lines, err := decodeFilePipeline(source, c.Origin.FileConfigYAML)
	if err != nil {
		return unjoin(err)
	}
	var errs []error
	for _, p := range fp.validate(c.WAL.MaxEntryBytes) {
		errs = append(errs, &KeyError{Source: source, Key: p.key, Line: lines.at(p.key), Err: p.err})
	}
	if len(errs) > 0 {
		return errs
	}
	c.FilePipeline = fp
	return nil
}

// keyLines maps dotted keys ("routes[0].multiline.pattern") to the line of
// their value.
type keyLines map[string]int

// at returns the line of key, else of the closest enclosing key.
func (l keyLines) at(key string) int {
	for key != "" {
		if n, ok := l[key]; ok {
			return n
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// record notes the line of every key of mapping n under path.
func (l keyLines) record(n *yaml.Node, path string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		key := join(path, kn.Value)
		l[key] = vn.Line
		l.record(vn, key)
	}
}

// decodeFilePipeline parses data strictly: an unknown key, a duplicate key
// or a value of the wrong type is an error naming the key, the file and the
// line. An empty document, and an empty routes list, mean no routes.
func decodeFilePipeline(source string, data []byte) (FilePipeline, keyLines, error) {
	var fp FilePipeline
	lines := keyLines{}
	root, err := parseSingleDocument(source, data)
	if err != nil || root == nil || isNull(root) {
		return fp, lines, err
	}
	if root.Kind != yaml.MappingNode {
		return fp, lines, fmt.Errorf("config: %s: the top level must be a mapping of keys (line %d)", source, root.Line)
	}
	d := &decoder{source: source}
	seen := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := resolve(root.Content[i]), resolve(root.Content[i+1])
		switch {
		case kn.Kind != yaml.ScalarNode:
			d.fail("?", kn.Line, errors.New("a key must be a plain string"))
			continue
		case kn.Value != "routes":
			d.fail(kn.Value, kn.Line, ErrUnknownKey)
			continue
		case seen:
			d.fail(kn.Value, kn.Line, errors.New("duplicate key"))
			continue
		}
		seen = true
		lines["routes"] = vn.Line
		if isNull(vn) {
			continue // "routes:" with every route commented out
		}
		if vn.Kind != yaml.SequenceNode {
			d.fail("routes", vn.Line, fmt.Errorf("want a list of routes, got %s", describe(vn)))
			continue
		}
		for j, item := range vn.Content {
			item = resolve(item)
			key := fmt.Sprintf("routes[%d]", j)
			lines[key] = item.Line
			if item.Kind != yaml.MappingNode {
				d.fail(key, item.Line, fmt.Errorf("want a mapping (name, match, labels, multiline), got %s", describe(item)))
				continue
			}
			lines.record(item, key)
			m := map[string]any{}
			n := len(d.errs)
			d.structMapping(item, reflect.TypeFor[FileRoute](), key, m)
			if len(d.errs) > n {
				continue
			}
			var r FileRoute
			fillStruct(reflect.ValueOf(&r).Elem(), m)
			fp.Routes = append(fp.Routes, r)
		}
	}
	if len(d.errs) > 0 {
		return FilePipeline{}, lines, errors.Join(d.errs...)
	}
	return fp, lines, nil
}

// fillStruct sets the fields of struct v from m, a structMapping result:
// keys are yaml tags and leaves already have their fields' exact types.
func fillStruct(v reflect.Value, m map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		val, ok := m[yamlKey(t.Field(i))]
		if !ok {
			continue
		}
		if sub, ok := val.(map[string]any); ok && t.Field(i).Type.Kind() == reflect.Struct {
			fillStruct(v.Field(i), sub)
			continue
		}
		v.Field(i).Set(reflect.ValueOf(val))
	}
}

// routeProblem is one validation failure of the file-routing file.
type routeProblem struct {
	key string
	err error
}

// Label names the file source sets on every line itself.
var sourceLabels = []string{"filename", "host"}

// validate checks every route; maxEntry is wal.max_entry_bytes, which one
// multi-line entry (one WAL record) must fit in.
func (fp FilePipeline) validate(maxEntry ByteSize) []routeProblem {
	var out []routeProblem
	bad := func(key, format string, a ...any) {
		out = append(out, routeProblem{key, fmt.Errorf(format, a...)})
	}
	names := map[string]int{}
	for i, r := range fp.Routes {
		at := fmt.Sprintf("routes[%d]", i)
		if strings.TrimSpace(r.Name) == "" {
			bad(at+".name", "required")
		} else if j, dup := names[r.Name]; dup {
			bad(at+".name", "%q is also the name of routes[%d]", r.Name, j)
		} else {
			names[r.Name] = i
		}
		if len(r.Match) == 0 {
			bad(at+".match", "at least one glob required")
		}
		for j, g := range r.Match {
			if strings.TrimSpace(g) == "" {
				bad(fmt.Sprintf("%s.match[%d]", at, j), "empty pattern")
			} else if err := checkGlob(g); err != nil {
				bad(fmt.Sprintf("%s.match[%d]", at, j), "invalid pattern %q: %v", g, err)
			}
		}
		var p problems
		p.labels(at+".labels", r.Labels)
		for _, e := range p {
			// "routes[i].labels[.NAME]: why": keep the key apart.
			k, why, _ := strings.Cut(e.Error(), ": ")
			out = append(out, routeProblem{k, errors.New(why)})
		}
		for _, name := range sourceLabels {
			if _, ok := r.Labels[name]; ok {
				bad(at+".labels", "label %q is set by the file source", name)
			}
		}
		out = append(out, r.Multiline.validate(at+".multiline", maxEntry)...)
	}
	return out
}

func (m MultilineConfig) validate(key string, maxEntry ByteSize) []routeProblem {
	if m == (MultilineConfig{}) {
		return nil
	}
	mc := m.Config()
	if !mc.Enabled() {
		return []routeProblem{{key, fmt.Errorf("set preset (%s), or mode and pattern", strings.Join(multiline.Presets(), ", "))}}
	}
	mc = mc.WithDefaults()
	var out []routeProblem
	if err := mc.Validate(); err != nil {
		// Each problem reads "multiline.<field>: ...": keep the field as key.
		parent := strings.TrimSuffix(key, "multiline")
		for _, e := range unjoin(err) {
			msg := e.Error()
			k, rest, ok := strings.Cut(msg, ": ")
			if !ok || !strings.HasPrefix(k, "multiline") {
				k, rest = "multiline", msg
			}
			out = append(out, routeProblem{parent + k, errors.New(rest)})
		}
		return out
	}
	if need := ByteSize(mc.MaxBytes) + entryOverheadBytes; need > maxEntry {
		out = append(out, routeProblem{key + ".max_bytes", fmt.Errorf(
			"%s plus %s of record overhead exceeds wal.max_entry_bytes (%s): one entry is one WAL record",
			ByteSize(mc.MaxBytes), entryOverheadBytes, maxEntry)})
	}
	return out
}
