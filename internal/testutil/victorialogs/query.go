package victorialogs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ForceFlush makes everything ingested so far visible to queries. It does
// not make it survive Kill. Query and Count call it themselves.
func (s *Server) ForceFlush() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.forceFlush(ctx); err != nil {
		s.t.Fatalf("victorialogs: %v", err)
	}
}

func (s *Server) forceFlush(ctx context.Context) error {
	body, status, err := s.post(ctx, "/internal/force_flush", nil)
	if err != nil {
		return fmt.Errorf("force flush: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("force flush: HTTP %d: %s", status, firstLine(body))
	}
	return nil
}

// Query flushes, runs a LogsQL query over all time and returns the rows,
// each a map from field name to value (VictoriaLogs returns every value as
// a string). Rows come in no particular order unless the query sorts them.
func (s *Server) Query(ctx context.Context, logsql string) ([]map[string]string, error) {
	if err := s.forceFlush(ctx); err != nil {
		return nil, fmt.Errorf("victorialogs: %w", err)
	}
	form := url.Values{"query": {logsql}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/select/logsql/query",
		strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("victorialogs: query: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("victorialogs: query %q: %w", logsql, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("victorialogs: query %q: HTTP %d: %s", logsql, resp.StatusCode, firstLine(body))
	}
	var rows []map[string]string
	dec := json.NewDecoder(resp.Body)
	for {
		var row map[string]string
		if err := dec.Decode(&row); err != nil {
			if errors.Is(err, io.EOF) {
				return rows, nil
			}
			return nil, fmt.Errorf("victorialogs: query %q: row %d: %w", logsql, len(rows), err)
		}
		rows = append(rows, row)
	}
}

// Count returns how many rows logsql matches (all time), appending
// "| stats count() c" to it. An empty query counts everything.
func (s *Server) Count(ctx context.Context, logsql string) (int, error) {
	if strings.TrimSpace(logsql) == "" {
		logsql = "*"
	}
	rows, err := s.Query(ctx, logsql+" | stats count() c")
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("victorialogs: count %q: got %d rows, want 1", logsql, len(rows))
	}
	n, err := strconv.Atoi(rows[0]["c"])
	if err != nil {
		return 0, fmt.Errorf("victorialogs: count %q: %w", logsql, err)
	}
	return n, nil
}

func (s *Server) post(ctx context.Context, path string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return out, resp.StatusCode, err
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(bytes.TrimSpace(b))
}
