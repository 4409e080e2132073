package file

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/logcapturer/log_capturer_go/ingest/multiline"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// route is a Route ready for use: absolute patterns, its label set without
// the filename, and its multiline configuration with defaults applied.
type route struct {
	name      string
	match     []string
	labels    map[string]string
	static    []record.Label // Config.Labels, the route's over them, the host
	multiline multiline.Config
}

// compileRoutes makes the routes' patterns absolute (like Include's).
func compileRoutes(routes []Route) ([]route, error) {
	out := make([]route, 0, len(routes))
	for _, r := range routes {
		c := route{name: r.Name, labels: maps.Clone(r.Labels), multiline: r.Multiline}
		for _, p := range r.Match {
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, fmt.Errorf("file: new: route %q: match %q: %w", r.Name, p, err)
			}
			c.match = append(c.match, abs)
		}
		out = append(out, c)
	}
	return out, nil
}

// routeFor returns the first route matching the stream path (the path a
// file's lines are attributed to, kept across rotations), or nil.
func (s *Source) routeFor(stream string) *route {
	for i := range s.routes {
		for _, p := range s.routes[i].match {
			if matchPath(p, stream) {
				return &s.routes[i]
			}
		}
	}
	return nil
}

// newAssembler builds the multiline assembler of a file under r; nil when
// r does not ask for one.
func (s *Source) newAssembler(r *route) *multiline.Assembler {
	if r == nil || !r.multiline.Enabled() {
		return nil
	}
	a, err := multiline.New(r.multiline)
	if err != nil {
		// Validated by New; unreachable unless a preset changed under us.
		s.log.Error().Err(err).Str("route", r.name).Msg("file: multiline disabled for the route")
		return nil
	}
	return a
}

// staticLabels is base with over merged on top, plus the host label, sorted
// by name so that a route's label sets are built the same way every time.
func staticLabels(base, over map[string]string, host string) []record.Label {
	m := maps.Clone(base)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, over)
	out := make([]record.Label, 0, len(m)+1)
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, record.Label{Name: name, Value: m[name]})
	}
	if host != "" {
		out = append(out, record.Label{Name: LabelHost, Value: host})
	}
	return out
}
