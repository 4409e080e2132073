// Package loki speaks the Grafana Loki push protocol, without Loki code.
//
// Contract:
//
//   - AppendPushRequest hand-encodes a logproto.PushRequest (protobuf, field
//     numbers in PROTOCOLS.md A2) into a caller-owned buffer; Compress
//     snappy-encodes it in the block format (never the framed format). The
//     result is the POST body. Every entry carries its timestamp.
//   - Client.Push sends one body with Content-Type application/x-protobuf
//     and no Content-Encoding, X-Scope-OrgID when a tenant is set, and the
//     configured auth. It does one attempt and classifies the outcome:
//     Ack (any 2xx, Loki's 260 included), Retry (transport error, timeout,
//     429, 5xx; Retry-After parsed) or Permanent (any other status, whose
//     batch belongs in the DLQ: Loki may have ingested part of a 400).
//     Retrying, batching and concurrency belong to the caller; Backoff
//     gives the jittered delays.
//   - Errors and Client.URL never contain the URL's userinfo or query, nor
//     auth secrets.
//   - LokiProber (GET /loki/api/v1/query_range) and VictoriaLogsProber
//     (POST /select/logsql/query) tell which lines a receiver stores: per
//     stream, over the exact time range, matching the exact stream,
//     nanosecond timestamp and line bytes, with multiplicity (probe.go). An
//     error never marks a line present; QueryBaseURL derives the query URL
//     from the push URL.
//   - SanitizeLabelName and NormalizeURL implement Loki's label-name grammar
//     and the "full push URL or base URL" rule of the configuration.
//
// The package starts no goroutines; Client.Close releases idle connections.
// Its integration test pushes to a real VictoriaLogs, which speaks the same
// protocol (see internal/testutil/victorialogs).
package loki
