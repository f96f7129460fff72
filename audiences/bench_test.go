package audiences

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// The audience benchmarks' data set: benchPeople people of four kinds
// (index % 4), each with benchEachPerson messages; fewer on PostgreSQL,
// where storing them through the ingestion path takes longer.
const (
	benchPeople     = 5000
	benchPeoplePG   = 2000
	benchEachPerson = 10
	// benchCSVMembers is the size of the result BenchmarkCSVWrite exports.
	benchCSVMembers = 20000
)

// benchNow is when the benchmarks ingest and evaluate.
func benchNow() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }

// onEachEngineB runs bench on a fresh SQLite file, and on a fresh
// PostgreSQL schema when sqltest.PostgresEnv is set.
func onEachEngineB(b *testing.B, bench func(b *testing.B, db *sqldb.DB)) {
	b.Run("sqlite", func(b *testing.B) { bench(b, sqltest.MustOpenSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { bench(b, sqltest.MustOpenPostgres(b)) })
}

// BenchmarkBuiltinAudiences computes each built-in audience with the
// runner, as a scheduled run does (compute, compare, replace the result),
// over benchPeople profiles (benchPeoplePG on PostgreSQL) with
// benchEachPerson events each, stored through the ingestion path; ns/op is
// one run. A quarter of the people
// are in each audience, which every run checks.
func BenchmarkBuiltinAudiences(b *testing.B) {
	onEachEngineB(b, func(b *testing.B, db *sqldb.DB) {
		people := benchPeople
		if db.Dialect() == sqldb.Postgres {
			people = benchPeoplePG
		}
		mustSeedBench(b, db, people)
		runner := NewRunner(db, Builtins(), benchNow, nil)
		for _, name := range runner.RunOrder() {
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				var run Run
				for b.Loop() {
					var err error
					if run, err = runner.Run(context.Background(), name); err != nil {
						b.Fatal(err)
					}
				}
				if run.Size != people/4 {
					b.Fatalf("%s has %d members, want %d", name, run.Size, people/4)
				}
				b.ReportMetric(float64(people*b.N)/b.Elapsed().Seconds(), "profiles/s")
				b.ReportMetric(float64(run.Size), "members")
			})
		}
	})
}

// mustSeedBench stores people people's messages through Store.Ingest in
// batches of 500, as knit bench seed does.
func mustSeedBench(b testing.TB, db *sqldb.DB, people int) {
	b.Helper()
	store := resolver.NewStore(db, resolver.DefaultRules(), benchNow, nil)
	env := resolver.Envelope{Source: "bench", ReceivedAt: benchNow()}
	var batch []*resolver.Message
	flush := func() {
		if _, err := store.Ingest(context.Background(), batch); err != nil {
			b.Fatalf("ingest: %v", err)
		}
		batch = batch[:0]
	}
	for i := range people {
		for k, fields := range benchPerson(i) {
			fields["messageId"] = fmt.Sprintf("bench-%d-%d", i, k)
			raw, err := json.Marshal(fields)
			if err != nil {
				b.Fatal(err)
			}
			m, err := resolver.ParseMessage(raw, env)
			if err != nil {
				b.Fatalf("parse %s: %v", raw, err)
			}
			if batch = append(batch, m); len(batch) == 500 {
				flush()
			}
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if db.Dialect() == sqldb.Postgres {
		// What autovacuum does soon after a bulk load (this test server
		// runs without it): without statistics the planner reads the
		// runs since each shoe order through the event-name index,
		// thousands of times slower.
		if _, err := db.Exec(`ANALYZE events, profiles, identities, traits`); err != nil {
			b.Fatalf("analyze: %v", err)
		}
	}
}

// benchPerson returns person i's benchEachPerson messages: an identify
// with a userId, an anonymousId and an email, then by kind (i % 4)
//   - 0: product views, a removed add and an add two days ago: in
//     cart_abandonment;
//   - 1: product views, an add and its order: in neither audience;
//   - 2: a shoe order and 8 runs of 10 km: in neither;
//   - 3: a shoe order, a negative run and 7 runs of 45 miles: in
//     shoe_reorder.
func benchPerson(i int) []map[string]any {
	user, anon := fmt.Sprintf("user-%d", i), fmt.Sprintf("anon-%d", i)
	at := func(d time.Duration) string {
		return benchNow().Add(-d).Format(time.RFC3339Nano)
	}
	track := func(event string, d time.Duration, props map[string]any) map[string]any {
		return map[string]any{"type": "track", "userId": user, "event": event,
			"timestamp": at(d), "properties": props}
	}
	product := map[string]any{"product_id": fmt.Sprintf("p-%d", i%50), "category": "Apparel"}
	shoe := map[string]any{"product_id": "shoe-a", "category": "Shoes"}
	messages := []map[string]any{{"type": "identify", "userId": user, "anonymousId": anon,
		"timestamp": at(30 * 24 * time.Hour), "traits": map[string]any{
			"email": fmt.Sprintf("person-%d@example.com", i), "first_name": "Pat"}}}
	views := func(n int) {
		for k := range n {
			messages = append(messages, map[string]any{"type": "track", "anonymousId": anon,
				"event": "Product Viewed", "timestamp": at(time.Duration(20*24-k) * time.Hour),
				"properties": product})
		}
	}
	switch i % 4 {
	case 0:
		views(benchEachPerson - 4)
		sock := map[string]any{"product_id": "sock-1"}
		messages = append(messages, track("Product Added", 4*24*time.Hour, sock),
			track("Product Removed", 3*24*time.Hour, sock),
			track("Product Added", 2*24*time.Hour, product))
	case 1:
		views(benchEachPerson - 3)
		messages = append(messages, track("Product Added", 3*24*time.Hour, product),
			track("Order Completed", 2*24*time.Hour,
				map[string]any{"products": []any{product}}))
	default:
		messages = append(messages, track("Order Completed", 60*24*time.Hour,
			map[string]any{"products": []any{shoe}}))
		for k := range benchEachPerson - 2 {
			run := map[string]any{"distance": 10, "distance_unit": "km"}
			if i%4 == 3 {
				run = map[string]any{"distance": 45}
				if k == 0 {
					run["distance"] = -5
				}
			}
			messages = append(messages, track("Workout Completed",
				time.Duration(50-k)*24*time.Hour, run))
		}
	}
	return messages
}

// BenchmarkCSVWrite writes the CSV export of a cart_abandonment result of
// benchCSVMembers members, saved by the runner, to io.Discard through
// Runner.WriteCSVWith, once per layout; ns/op is one whole export.
func BenchmarkCSVWrite(b *testing.B) {
	onEachEngineB(b, func(b *testing.B, db *sqldb.DB) {
		runner := NewRunner(db, Builtins(), benchNow, nil)
		mustSaveMembers(b, runner, "cart_abandonment", benchCSVMembers)
		for _, layout := range []string{"default", "columns", "json"} {
			b.Run(layout, func(b *testing.B) {
				benchCSVLayout(b, runner, CSVOptions{Layout: layout})
			})
		}
	})
}

func benchCSVLayout(b *testing.B, runner *Runner, opts CSVOptions) {
	b.ReportAllocs()
	var out countingWriter
	for b.Loop() {
		out = countingWriter{}
		err := runner.WriteCSVWith(context.Background(), &out, "cart_abandonment", opts)
		if err != nil {
			b.Fatal(err)
		}
	}
	if out.lines != benchCSVMembers+1 {
		b.Fatalf("wrote %d lines, want a header and %d rows", out.lines, benchCSVMembers)
	}
	b.SetBytes(out.bytes)
	b.ReportMetric(float64(benchCSVMembers*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// countingWriter counts what is written to it, then drops it.
type countingWriter struct {
	bytes, lines int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.bytes += int64(len(p))
	for _, c := range p {
		if c == '\n' {
			w.lines++
		}
	}
	return io.Discard.Write(p)
}

// mustSaveMembers makes n members the audience's current result, through
// the runner's own bookkeeping: a started run, saved.
func mustSaveMembers(b testing.TB, r *Runner, name string, n int) {
	b.Helper()
	ctx := context.Background()
	def, err := r.Definition(name)
	if err != nil {
		b.Fatal(err)
	}
	members := make([]memberRow, n)
	for i := range members {
		user, email := fmt.Sprintf("user-%d", i), fmt.Sprintf("person-%d@example.com", i)
		ids, err := json.Marshal(map[string][]string{"user_id": {user}, "email": {email},
			"anonymous_id": {fmt.Sprintf("anon-%d-a", i), fmt.Sprintf("anon-%d-b", i)},
			"ios.id":       {fmt.Sprintf("ios-%d", i)}})
		if err != nil {
			b.Fatal(err)
		}
		attrs, err := json.Marshal(map[string]any{
			"abandoned_products": []string{"shoe-a", "sock-1"},
			"added_at":           FormatTime(benchNow().Add(-time.Duration(i) * time.Second))})
		if err != nil {
			b.Fatal(err)
		}
		members[i] = memberRow{ProfileID: int64(i + 1), UserID: user, Email: email,
			Identifiers: string(ids), Attributes: string(attrs)}
	}
	run, err := r.start(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.save(ctx, def, run, members); err != nil {
		b.Fatal(err)
	}
}
