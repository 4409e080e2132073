package ship

import (
	"fmt"
	"time"

	"github.com/logcapturer/log_capturer_go/ship/loki"
	"github.com/logcapturer/log_capturer_go/wal/record"
)

// LokiLimits are the limits of the Loki the sink pushes to (its
// limits_config), checked before sending so that entries Loki would refuse
// go to the DLQ with Loki's reason instead of provoking a 400 for their
// whole request. A zero value turns a check off. Defaults are Loki 3.x's.
//
// A line over MaxLineBytes is dead-lettered whole, not truncated: the DLQ
// keeps it intact for a replay once Loki's max_line_size is raised. To cut
// long lines instead, set files_config.max_line_bytes at or below Loki's
// limit; the capture then truncates and flags them.
type LokiLimits struct {
	MaxLineBytes        int           // max_line_size
	MaxLabelNames       int           // max_label_names_per_series (service_name not counted)
	MaxLabelNameLength  int           // max_label_name_length
	MaxLabelValueLength int           // max_label_value_length
	MaxAge              time.Duration // reject_old_samples_max_age (with reject_old_samples on)
	GracePeriod         time.Duration // creation_grace_period (how far in the future)
	MaxMetadataBytes    int           // max_structured_metadata_size
	MaxMetadataEntries  int           // max_structured_metadata_entries_count
}

// DefaultLokiLimits returns Loki 3.x's defaults (PROTOCOLS.md A8).
func DefaultLokiLimits() LokiLimits {
	return LokiLimits{
		MaxLineBytes:        256 << 10,
		MaxLabelNames:       15,
		MaxLabelNameLength:  1024,
		MaxLabelValueLength: 2048,
		MaxAge:              7 * 24 * time.Hour,
		GracePeriod:         10 * time.Minute,
		MaxMetadataBytes:    64 << 10,
		MaxMetadataEntries:  128,
	}
}

// Validate rejects negative limits.
func (l LokiLimits) Validate() error {
	if l.MaxLineBytes < 0 || l.MaxLabelNames < 0 || l.MaxLabelNameLength < 0 || l.MaxLabelValueLength < 0 ||
		l.MaxAge < 0 || l.GracePeriod < 0 || l.MaxMetadataBytes < 0 || l.MaxMetadataEntries < 0 {
		return fmt.Errorf("ship: loki limits must not be negative: %+v", l)
	}
	return nil
}

// checkLabels applies Loki's label rules to a stream's labels as sent.
func (l LokiLimits) checkLabels(labels []record.Label) (reason, detail string) {
	if len(labels) == 0 {
		return loki.ReasonMissingLabels, "stream has no labels"
	}
	names := 0
	for i, lb := range labels {
		if lb.Name != "service_name" {
			names++
		}
		if !validLabelName(lb.Name) {
			return loki.ReasonInvalidLabels, fmt.Sprintf("label name %q is not [a-zA-Z_][a-zA-Z0-9_]*", lb.Name)
		}
		if i > 0 && labels[i-1].Name == lb.Name {
			return loki.ReasonDuplicateLabelNames, fmt.Sprintf("duplicate label name %q", lb.Name)
		}
		if l.MaxLabelNameLength > 0 && len(lb.Name) > l.MaxLabelNameLength {
			return loki.ReasonLabelNameTooLong, fmt.Sprintf("label name of %d bytes over %d", len(lb.Name), l.MaxLabelNameLength)
		}
		if l.MaxLabelValueLength > 0 && len(lb.Value) > l.MaxLabelValueLength {
			return loki.ReasonLabelValueTooLong, fmt.Sprintf("label %s has a value of %d bytes over %d", lb.Name, len(lb.Value), l.MaxLabelValueLength)
		}
	}
	if l.MaxLabelNames > 0 && names > l.MaxLabelNames {
		return loki.ReasonTooManyLabels, fmt.Sprintf("%d label names over %d", names, l.MaxLabelNames)
	}
	return "", ""
}

// checkEntry applies Loki's per-entry rules.
func (l LokiLimits) checkEntry(e *Entry, now time.Time) (reason, detail string) {
	if l.MaxLineBytes > 0 && len(e.Line) > l.MaxLineBytes {
		return loki.ReasonLineTooLong, fmt.Sprintf("line of %d bytes over %d", len(e.Line), l.MaxLineBytes)
	}
	if l.MaxAge > 0 && e.Time < now.Add(-l.MaxAge).UnixNano() {
		return loki.ReasonTooOld, fmt.Sprintf("timestamp %s older than %s", time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano), l.MaxAge)
	}
	if l.GracePeriod > 0 && e.Time > now.Add(l.GracePeriod).UnixNano() {
		return loki.ReasonTooNew, fmt.Sprintf("timestamp %s more than %s ahead", time.Unix(0, e.Time).UTC().Format(time.RFC3339Nano), l.GracePeriod)
	}
	if len(e.Metadata) > 0 {
		if l.MaxMetadataEntries > 0 && len(e.Metadata) > l.MaxMetadataEntries {
			return loki.ReasonMetadataTooMany, fmt.Sprintf("%d structured metadata entries over %d", len(e.Metadata), l.MaxMetadataEntries)
		}
		if l.MaxMetadataBytes > 0 {
			if n := metadataBytes(e.Metadata); n > l.MaxMetadataBytes {
				return loki.ReasonMetadataTooLarge, fmt.Sprintf("structured metadata of %d bytes over %d", n, l.MaxMetadataBytes)
			}
		}
	}
	return "", ""
}

// metadataBytes is Loki's size of structured metadata: names plus values.
func metadataBytes(m []record.Label) int {
	n := 0
	for _, l := range m {
		n += len(l.Name) + len(l.Value)
	}
	return n
}

func validLabelName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || (i > 0 && '0' <= c && c <= '9') {
			continue
		}
		return false
	}
	return true
}
