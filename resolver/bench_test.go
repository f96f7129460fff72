package resolver_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

func benchMessage(i int) []byte {
	return fmt.Appendf(nil, `{"type":"track","messageId":"bench-%d",`+
		`"timestamp":"2026-11-26T20:02:00.000Z","userId":"user-%d",`+
		`"anonymousId":"anon-%d","event":"Product Added",`+
		`"context":{"app":{"name":"SegKicks"},"device":{"id":"ios-%d","type":"ios"}},`+
		`"properties":{"product_id":"shoe-c","price":99}}`, i, i%1000, i%3000, i%2000)
}

func BenchmarkParseMessage(b *testing.B) {
	raw := benchMessage(1)
	env := resolver.Envelope{Source: "bench", ReceivedAt: fixedNow}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resolver.ParseMessage(raw, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestBatch100 stores batches of 100 messages, identity
// resolution included, into a real SQLite file, or into PostgreSQL when
// KNIT_TEST_POSTGRES is set; ns/op is per batch.
func BenchmarkIngestBatch100(b *testing.B) {
	store := mustStore(b, sqltest.MustOpen(b))
	env := resolver.Envelope{Source: "bench", ReceivedAt: fixedNow}
	ctx := context.Background()
	b.ReportAllocs()

	next := 0
	for b.Loop() {
		batch := make([]*resolver.Message, 100)
		for i := range batch {
			m, err := resolver.ParseMessage(benchMessage(next), env)
			if err != nil {
				b.Fatal(err)
			}
			batch[i] = m
			next++
		}
		if _, err := store.Ingest(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "events/s")
}
