package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// RedactedValue replaces every secret in Redacted output.
const RedactedValue = "<redacted>"

// Redacted returns a deep copy with every secret replaced by "<redacted>":
// server.api_token, sinks.loki.basic_auth.password, sinks.loki.bearer_token
// and any userinfo in sinks.loki.url. Unset secrets stay empty so an operator
// can tell "unset" from "set".
func (c *Config) Redacted() *Config {
	r := c.Clone()
	redact := func(s *string) {
		if *s != "" {
			*s = RedactedValue
		}
	}
	redact(&r.Server.APIToken)
	redact(&r.Sinks.Loki.BasicAuth.Password)
	redact(&r.Sinks.Loki.BearerToken)
	r.Sinks.Loki.URL = redactURL(r.Sinks.Loki.URL)
	return r
}

// redactURL hides the whole userinfo: a token is as often in the user part
// (https://TOKEN@host) as in the password.
func redactURL(s string) string {
	if s == "" {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: cannot tell where a secret would be, so hide it all
		// if it could contain one.
		if strings.Contains(s, "@") {
			return RedactedValue
		}
		return s
	}
	if u.User == nil {
		return s
	}
	const mark = "REDACTEDUSERINFO"
	u.User = url.User(mark)
	return strings.Replace(u.String(), mark, RedactedValue, 1)
}

// Map renders the configuration as nested maps keyed like the YAML file,
// durations and sizes as strings ("10ms", "8MiB"). It includes secrets as
// they are: serve Redacted().Map(), never Map() of the live config.
func (c *Config) Map() map[string]any {
	m := displayMap(reflect.ValueOf(*c))
	// The file-routing file is loaded apart (yaml:"-") but is part of
	// what the agent runs with.
	m["file_pipeline"] = displayMap(reflect.ValueOf(c.FilePipeline))
	return m
}

func displayMap(v reflect.Value) map[string]any {
	t := v.Type()
	out := make(map[string]any, t.NumField())
	for i := range t.NumField() {
		key := yamlKey(t.Field(i))
		if key == "" {
			continue
		}
		fv := v.Field(i)
		switch {
		case fv.Type() == durationType:
			out[key] = time.Duration(fv.Int()).String()
		case fv.Type() == byteSizeType:
			out[key] = ByteSize(fv.Int()).String()
		case fv.Kind() == reflect.Struct:
			out[key] = displayMap(fv)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			s := make([]map[string]any, 0, fv.Len())
			for j := range fv.Len() {
				s = append(s, displayMap(fv.Index(j)))
			}
			out[key] = s
		case fv.Kind() == reflect.Slice:
			s := make([]string, 0, fv.Len())
			for j := range fv.Len() {
				s = append(s, fv.Index(j).String())
			}
			out[key] = s
		case fv.Kind() == reflect.Map:
			m := make(map[string]string, fv.Len())
			iter := fv.MapRange()
			for iter.Next() {
				m[iter.Key().String()] = iter.Value().String()
			}
			out[key] = m
		default:
			out[key] = fv.Interface()
		}
	}
	return out
}

// MarshalJSON renders Map, so JSON output uses the YAML keys and readable
// durations and sizes. Like Map it includes secrets: marshal Redacted().
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.Map())
}

// Summary is one line for the start-up log, free of secrets.
func (c *Config) Summary() string {
	var b strings.Builder
	src := c.Origin.ConfigFile
	if src == "" {
		src = EmbeddedSource
	}
	fmt.Fprintf(&b, "config=%s data_dir=%s", src, c.DataDir)
	fmt.Fprintf(&b, " wal.max_size=%s wal.segment_size=%s wal.sync_interval=%s",
		c.WAL.MaxSize, c.WAL.SegmentSize, c.WAL.SyncInterval)
	var sinks []string
	if l := c.Sinks.Loki; l.Enabled {
		s := "loki(" + redactURL(l.URL)
		if l.TenantID != "" {
			s += " tenant=" + l.TenantID
		}
		sinks = append(sinks, s+")")
	}
	if f := c.Sinks.File; f.Enabled {
		sinks = append(sinks, "file("+f.Path+")")
	}
	if len(sinks) == 0 {
		sinks = append(sinks, "none")
	}
	fmt.Fprintf(&b, " sinks=%s", strings.Join(sinks, ","))
	if c.Files.Enabled {
		fmt.Fprintf(&b, " files.include=%d files.exclude=%d", len(c.Files.Include), len(c.Files.Exclude))
	} else {
		b.WriteString(" files=off")
	}
	if c.Containers.Enabled {
		b.WriteString(" containers=on")
	} else {
		b.WriteString(" containers=off")
	}
	fmt.Fprintf(&b, " listen=%s metrics_listen=%s log=%s/%s",
		c.Server.Listen, c.Server.MetricsListen, c.Log.Level, c.Log.Format)
	return b.String()
}
