// Package api serves the agent's HTTP control surface: health, statistics,
// the redacted configuration, positions, the DLQ, hot reload and Prometheus
// metrics.
//
// The package imports nothing of ours. It declares the narrow interfaces it
// reads (HealthReporter, StatsReporter, ConfigReporter, PositionsReporter,
// Reloader, DLQStatsReporter, DLQReprocessor); the wiring in cmd adapts the
// real components to them. A nil dependency makes its endpoint answer
// 501 Not Implemented, except /health (always answers: the process is alive)
// and /metrics (always served from the Gatherer handed to New).
//
// Routes on Config.Listen (default 127.0.0.1:8401):
//
//	GET  /health          200 ok | 200 degraded | 503 down
//	GET  /stats           StatsReporter.Stats() as JSON
//	GET  /config          ConfigReporter.RedactedConfig() as JSON
//	POST /config/reload   Reloader.Reload                        (token)
//	GET  /positions       PositionsReporter.Positions() as JSON
//	GET  /dlq/stats       DLQStatsReporter.DLQStats() as JSON
//	POST /dlq/reprocess   DLQReprocessor.Reprocess, JSON body    (token)
//	GET  /metrics         Prometheus exposition of the Gatherer
//
// Config.MetricsListen (default 127.0.0.1:8001; empty disables it) serves only
// GET /metrics, from the same Gatherer: both listeners show the same registry,
// with no HTTP proxying between them.
//
// Mutating endpoints need "Authorization: Bearer TOKEN": 401 without it, 403
// with a wrong one (compared in constant time). With no token configured they
// answer 403: a control surface must not be open by default. Every error body
// is JSON: {"error":"..."}; this includes the router's own 404 and 405.
//
// Lifecycle: New validates and starts nothing. Listen binds both addresses
// (a port conflict fails at once, naming the address), after which Addr and
// MetricsAddr report the bound addresses. Serve runs until its context ends,
// then shuts both servers down gracefully within Config.ShutdownTimeout.
// Run is Listen followed by Serve. A Server is used once.
package api
