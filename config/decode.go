package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrUnknownKey is wrapped by the error for a key the schema does not have.
var ErrUnknownKey = errors.New("unknown key")

// KeyError is a problem with one key of one configuration source.
type KeyError struct {
	Source string // file path, or a description such as "embedded:configs/config.yaml"
	Key    string // dotted key, e.g. "wal.segment_size"
	Line   int    // 1-based line in Source, 0 when unknown
	Err    error
}

func (e *KeyError) Error() string {
	at := ""
	if e.Line > 0 {
		at = " (line " + strconv.Itoa(e.Line) + ")"
	}
	if errors.Is(e.Err, ErrUnknownKey) {
		return fmt.Sprintf("config: %s: unknown key %q%s", e.Source, e.Key, at)
	}
	return fmt.Sprintf("config: %s: %s: %v%s", e.Source, e.Key, e.Err, at)
}

func (e *KeyError) Unwrap() error { return e.Err }

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// decoder turns one YAML document into a nested map holding only known keys,
// with every leaf already converted to the Go type of its field. Converting
// here, where the file and line are known, is what lets every error name the
// key and the file; the layers merged afterwards are already well typed.
type decoder struct {
	source string
	errs   []error
}

// decodeFile parses data strictly against the Config schema.
func decodeFile(source string, data []byte) (map[string]any, error) {
	root, err := parseSingleDocument(source, data)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if root == nil {
		return out, nil
	}
	d := &decoder{source: source}
	if root.Kind != yaml.MappingNode {
		if isNull(root) {
			return out, nil
		}
		return nil, fmt.Errorf("config: %s: the top level must be a mapping of keys (line %d)", source, root.Line)
	}
	d.structMapping(root, reflect.TypeFor[Config](), "", out)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return out, nil
}

// parseSingleDocument returns the root node of the only document in data,
// nil for an empty input. A second document is an error: it would otherwise
// be ignored silently.
func parseSingleDocument(source string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("config: %s: %w", source, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", source, err)
		}
		return nil, fmt.Errorf("config: %s: more than one YAML document (second starts at line %d)", source, extra.Line)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return resolve(doc.Content[0]), nil
	}
	return resolve(&doc), nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) fail(key string, line int, err error) {
	d.errs = append(d.errs, &KeyError{Source: d.source, Key: key, Line: line, Err: err})
}

// fieldsByKey maps yaml keys to field indexes of struct type t.
func fieldsByKey(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if tag := yamlKey(t.Field(i)); tag != "" {
			m[tag] = i
		}
	}
	return m
}

func yamlKey(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	return tag
}

// structMapping decodes mapping node n against struct type t into out.
func (d *decoder) structMapping(n *yaml.Node, t reflect.Type, path string, out map[string]any) {
	fields := fieldsByKey(t)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode {
			d.fail(join(path, "?"), kn.Line, errors.New("a key must be a plain string"))
			continue
		}
		key := join(path, kn.Value)
		if kn.Value == "<<" {
			d.fail(key, kn.Line, errors.New("YAML merge keys are not supported; repeat the keys"))
			continue
		}
		idx, ok := fields[kn.Value]
		if !ok {
			d.fail(key, kn.Line, ErrUnknownKey)
			continue
		}
		if seen[kn.Value] {
			d.fail(key, kn.Line, errors.New("duplicate key"))
			continue
		}
		seen[kn.Value] = true
		ft := t.Field(idx).Type
		if ft.Kind() == reflect.Struct && ft != durationType {
			switch {
			case isNull(vn):
				// An empty section ("containers:" with every line commented
				// out) sets nothing.
			case vn.Kind != yaml.MappingNode:
				d.fail(key, vn.Line, fmt.Errorf("want a mapping of keys, got %s", describe(vn)))
			default:
				sub := map[string]any{}
				d.structMapping(vn, ft, key, sub)
				out[kn.Value] = sub
			}
			continue
		}
		v, err := decodeLeaf(vn, ft)
		if err != nil {
			d.fail(key, vn.Line, err)
			continue
		}
		if v != nil {
			out[kn.Value] = v
		}
	}
}

// errNullCollection explains why a null list or map is refused: it is the
// one spelling where "defaults" and "none" cannot be told apart.
var errNullCollection = errors.New("empty value is ambiguous: remove the key to keep the defaults, or write [] (or {} for a map) for none")

// decodeLeaf converts a value node to the Go type t. A nil result with a nil
// error means "not set" (a null scalar).
func decodeLeaf(n *yaml.Node, t reflect.Type) (any, error) {
	if isNull(n) {
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			return nil, errNullCollection
		}
		return nil, nil
	}
	switch {
	case t == durationType:
		return decodeDuration(n)
	case t == byteSizeType:
		var b ByteSize
		if err := b.UnmarshalYAML(n); err != nil {
			return nil, err
		}
		return b, nil
	}
	switch t.Kind() {
	case reflect.String:
		return scalarString(n)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return nil, fmt.Errorf("want true or false, got %s", describe(n))
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("want true or false, got %s", describe(n))
		}
		return b, nil
	case reflect.Int:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && isDigits(strings.TrimPrefix(n.Value, "-")) {
			// yaml resolves an integer too large for 64 bits as a float.
			return nil, fmt.Errorf("integer %s out of range", n.Value)
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return nil, fmt.Errorf("want an integer, got %s", describe(n))
		}
		var v int
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("integer %s out of range", n.Value)
		}
		return v, nil
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			break
		}
		if n.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("want a list of strings, got %s", describe(n))
		}
		out := make([]string, 0, len(n.Content))
		for i, e := range n.Content {
			s, err := scalarString(resolve(e))
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, s)
		}
		return out, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String || t.Elem().Kind() != reflect.String {
			break
		}
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("want a mapping of strings, got %s", describe(n))
		}
		out := make(map[string]string, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, err := scalarString(resolve(n.Content[i]))
			if err != nil {
				return nil, fmt.Errorf("key: %w", err)
			}
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("duplicate key %q", k)
			}
			v, err := scalarString(resolve(n.Content[i+1]))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = v
		}
		return out, nil
	}
	// Only reachable if a field of an unsupported type is added to Config;
	// the schema test walks every field to keep this from shipping.
	return nil, fmt.Errorf("unsupported field type %s", t)
}

// scalarString accepts any non-null scalar as its literal text, so
// `tenant_id: 123` or `api_token: 0042` keep exactly what was written.
func scalarString(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", fmt.Errorf("want a string, got %s", describe(n))
	}
	return n.Value, nil
}

// decodeDuration accepts Go duration strings ("250ms", "1h30m") and a bare 0.
// Other bare numbers are refused: "10" has no unit, and yaml would read it
// as nanoseconds.
func decodeDuration(n *yaml.Node) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("want a duration such as \"10s\", got %s", describe(n))
	}
	if n.ShortTag() == "!!int" && n.Value == "0" {
		return 0, nil
	}
	if n.ShortTag() != "!!str" {
		return 0, fmt.Errorf("invalid duration %q: a duration needs a unit, e.g. \"10s\" or \"250ms\"", n.Value)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", n.Value)
	}
	return v, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "an empty value"
		case "!!str":
			return strconv.Quote(n.Value)
		default:
			return n.Value
		}
	}
	return "an unexpected node"
}

// structToMap renders a struct as the nested map koanf holds, keyed by yaml
// tags, leaves keeping their Go types. Slices and maps are copied.
func structToMap(v reflect.Value) map[string]any {
	t := v.Type()
	out := make(map[string]any, t.NumField())
	for i := range t.NumField() {
		key := yamlKey(t.Field(i))
		if key == "" {
			continue
		}
		fv := v.Field(i)
		switch {
		case fv.Kind() == reflect.Struct:
			out[key] = structToMap(fv)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			out[key] = append([]string{}, fv.Interface().([]string)...)
		case fv.Kind() == reflect.Map:
			m := make(map[string]string, fv.Len())
			for k, val := range fv.Interface().(map[string]string) {
				m[k] = val
			}
			out[key] = m
		default:
			out[key] = fv.Interface()
		}
	}
	return out
}
