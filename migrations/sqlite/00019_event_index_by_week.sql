-- Events by name and week instead of by name and time. The index on
-- (event, ts_ms) took a random page for most new events, as events of one
-- name arrive out of time order (a phone's batch hours late, traffic
-- spread over days): 23 % of the pages a shared ingestion transaction
-- wrote. Within a name and a week of event time, the key ends in the
-- row id, which only grows, so new events go on the last page of a few
-- weeks' ranges. Audience windows still find their events by this index:
-- the compiler adds the weeks that hold the window (audiences/sqlexpr.go)
-- and reads at most one week more on each side (docs/benchmarks.md,
-- twentieth session).
--
-- A week here is 604,800,000 ms of event time counted from the Unix
-- epoch; the expression must stay the one the audience compiler writes.
-- +goose Up
DROP INDEX events_event_ts;
CREATE INDEX events_event_week ON events (event, ts_ms / 604800000);

-- +goose Down
DROP INDEX events_event_week;
CREATE INDEX events_event_ts ON events (event, ts_ms);
