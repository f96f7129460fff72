package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// ceilingMessages are the same generated messages for the ceiling and for
// knit: what knit bench sends, parsed before any timer starts.
func ceilingMessages(b *testing.B, n int) []*resolver.Message {
	b.Helper()
	stream := newBenchStream(1, 100000, "ceiling", 0, time.Now(), 30*24*time.Hour)
	env := resolver.Envelope{Source: "bench", ReceivedAt: time.Now()}
	messages := make([]*resolver.Message, n)
	for i := range messages {
		m, err := resolver.ParseMessage(stream.appendNext(nil), env)
		if err != nil {
			b.Fatal(err)
		}
		messages[i] = m
	}
	return messages
}

// BenchmarkSQLiteCeiling is issue #7's ceiling: a minimal program that
// writes the rows knit writes for each message (the event, its identity
// rows, its identity links) straight into a migrated SQLite file in ONE
// transaction with prepared statements, resolving nothing. One op is one
// message; compare events/s with BenchmarkIngestLikeCeiling.
func BenchmarkSQLiteCeiling(b *testing.B) {
	db := sqltest.MustOpenSQLite(b)
	messages := ceilingMessages(b, b.N)
	rules := resolver.DefaultRules()
	b.ResetTimer()

	err := db.WithWriteTx(context.Background(), func(tx *sqlx.Tx) error {
		insert, err := prepareCeiling(tx)
		if err != nil {
			return err
		}
		for i, m := range messages {
			if err := insert(m, int64(i+1), rules); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// prepareCeiling returns what writes one message's rows.
func prepareCeiling(tx *sqlx.Tx) (func(*resolver.Message, int64, resolver.Rules) error, error) {
	statements := []string{
		`INSERT INTO profiles (id, created_ms, updated_ms) VALUES (?, ?, ?)`,
		`INSERT INTO events (id, message_id, source, type, event, user_id, anonymous_id,
			profile_id, ts_ms, received_ms, app, device_type, device_id, properties, raw)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		`INSERT INTO identities (type, value, profile_id, first_seen_ms, last_seen_ms,
			first_message_id, source, app, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
		`INSERT INTO identity_links (event_id, type, value, message_id)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	}
	prepared := make([]*sqlx.Stmt, len(statements))
	for i, s := range statements {
		stmt, err := tx.Preparex(s)
		if err != nil {
			return nil, err
		}
		prepared[i] = stmt
	}
	return func(m *resolver.Message, profile int64, rules resolver.Rules) error {
		at := m.Timestamp.UnixMilli()
		if _, err := prepared[0].Exec(profile, at, at); err != nil {
			return err
		}
		event := profile // one event, and one profile, a message
		_, err := prepared[1].Exec(event, m.ID, m.Source, m.Type, m.Event, m.UserID, m.AnonymousID,
			profile, at, m.ReceivedAt.UnixMilli(), m.App, m.DeviceType, m.DeviceID,
			m.PropertiesJSON(), string(m.Raw))
		if err != nil {
			return err
		}
		for _, id := range ceilingIdentifiers(m) {
			if _, err := prepared[2].Exec(id.Type, id.Value, profile, at, at, m.ID,
				m.Source, m.App, m.DeviceID); err != nil {
				return err
			}
			if _, err := prepared[3].Exec(event, id.Type, id.Value, m.ID); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// ceilingIdentifiers are the identifiers the ceiling writes: those a
// message names plainly (no rules, no normalising beyond trimming).
func ceilingIdentifiers(m *resolver.Message) []resolver.Identifier {
	var ids []resolver.Identifier
	add := func(kind, value string) {
		if value = strings.TrimSpace(value); value != "" {
			ids = append(ids, resolver.Identifier{Type: kind, Value: value})
		}
	}
	add(resolver.TypeUserID, m.UserID)
	add(resolver.TypeAnonymousID, m.AnonymousID)
	if email, ok := m.Traits["email"].(string); ok {
		add(resolver.TypeEmail, email)
	}
	if m.DeviceID != "" {
		add(m.DeviceType+".id", m.DeviceID)
	}
	return ids
}

// BenchmarkIngestLikeCeiling stores the ceiling's messages through knit's
// ingestion path (identity resolution, decisions, traits) in batches of
// 100 on a SQLite file, each batch its own transaction as /v1/batch does.
// One op is one message.
func BenchmarkIngestLikeCeiling(b *testing.B) { ingestInTransactionsOf(b, 100) }

// BenchmarkIngestTransactionSize stores the ceiling's messages through
// knit's ingestion path with that many messages a transaction: what
// sharing index pages between more messages buys, as the indexes grow
// with b.N. One op is one message.
func BenchmarkIngestTransactionSize(b *testing.B) {
	for _, size := range []int{400, 5000} {
		b.Run(strconv.Itoa(size), func(b *testing.B) { ingestInTransactionsOf(b, size) })
	}
}

// ingestInTransactionsOf stores b.N of the ceiling's messages through
// store.Ingest, size messages a call (a call is one transaction), on a
// fresh SQLite file, and reports events/s.
func ingestInTransactionsOf(b *testing.B, size int) {
	db := sqltest.MustOpenSQLite(b)
	store := resolver.NewStore(db, resolver.DefaultRules(), time.Now, nil)
	messages := ceilingMessages(b, b.N)
	b.ResetTimer()

	for start := 0; start < len(messages); start += size {
		batch := messages[start:min(start+size, len(messages))]
		if _, err := store.Ingest(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
