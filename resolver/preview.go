package resolver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// PreviewReport compares the identity graph knit holds with the one the
// same messages would give under other rules.
type PreviewReport struct {
	Messages         int
	ProfilesNow      int
	ProfilesProposed int
	// Merges are proposed profiles that join identifiers of several current
	// profiles; Splits are current profiles whose identifiers would spread
	// over several proposed ones. Each example lists the groups involved.
	Merges, Splits               int
	MergeExamples, SplitExamples []string
	// Dropped counts identifiers held now that no proposed profile holds;
	// Added the reverse (identifiers the new rules take that today's leave
	// out). Each has a few examples.
	Dropped, Added                 int
	DroppedExamples, AddedExamples []string
}

const previewExamples = 5

// Preview replays every stored message, in arrival order and with its
// stored time, into scratch (an empty, migrated database) under rules, and
// compares the result with the graph in db. Nothing in db changes.
func Preview(ctx context.Context, db, scratch *sqldb.DB, rules Rules,
	now func() time.Time) (PreviewReport, error) {
	var report PreviewReport
	if err := copyBlocks(ctx, db, scratch); err != nil {
		return report, err
	}
	proposed := NewStore(scratch, rules, now, nil)
	rows, err := db.QueryxContext(ctx, `SELECT id, message_id, source, ts_ms,
		received_ms, raw FROM events ORDER BY id`)
	if err != nil {
		return report, fmt.Errorf("read stored messages: %w", err)
	}
	defer rows.Close()

	var batch []*Message
	for rows.Next() {
		var e storedEvent
		if err := rows.StructScan(&e); err != nil {
			return report, fmt.Errorf("scan stored message: %w", err)
		}
		m, err := e.message()
		if err != nil {
			return report, err
		}
		report.Messages++
		if batch = append(batch, m); len(batch) == 500 {
			if _, err := proposed.Ingest(ctx, batch); err != nil {
				return report, err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return report, fmt.Errorf("read stored messages: %w", err)
	}
	if _, err := proposed.Ingest(ctx, batch); err != nil {
		return report, err
	}
	return compareGraphs(ctx, db, scratch, report)
}

// message re-reads a stored message with its stored id and time.
func (e storedEvent) message() (*Message, error) {
	received := time.UnixMilli(e.ReceivedMS).UTC()
	m, err := parseMessage([]byte(e.Raw), Envelope{Source: e.Source, ReceivedAt: received})
	if err != nil {
		return nil, fmt.Errorf("re-read message %s: %w", e.MessageID, err)
	}
	m.ID, m.Timestamp = e.MessageID, time.UnixMilli(e.TimestampMS).UTC()
	return m, nil
}

// graph maps each identifier to its profile.
type graph map[Identifier]int64

func readGraph(ctx context.Context, db *sqldb.DB) (graph, error) {
	var rows []struct {
		Type      string `db:"type"`
		Value     string `db:"value"`
		ProfileID int64  `db:"profile_id"`
	}
	if err := db.SelectContext(ctx, &rows,
		`SELECT type, value, profile_id FROM identities`); err != nil {
		return nil, fmt.Errorf("read identity graph: %w", err)
	}
	g := graph{}
	for _, r := range rows {
		g[Identifier{Type: r.Type, Value: r.Value}] = r.ProfileID
	}
	return g, nil
}

// groups inverts a graph: profile -> its identifiers.
func (g graph) groups() map[int64][]Identifier {
	out := map[int64][]Identifier{}
	for id, profile := range g {
		out[profile] = append(out[profile], id)
	}
	return out
}

func compareGraphs(ctx context.Context, db, scratch *sqldb.DB,
	report PreviewReport) (PreviewReport, error) {
	now, err := readGraph(ctx, db)
	if err != nil {
		return report, err
	}
	proposed, err := readGraph(ctx, scratch)
	if err != nil {
		return report, err
	}
	nowGroups, proposedGroups := now.groups(), proposed.groups()
	report.ProfilesNow, report.ProfilesProposed = len(nowGroups), len(proposedGroups)

	report.Merges, report.MergeExamples = spread(proposedGroups, now)
	report.Splits, report.SplitExamples = spread(nowGroups, proposed)
	report.Dropped, report.DroppedExamples = missingFrom(now, proposed)
	report.Added, report.AddedExamples = missingFrom(proposed, now)
	return report, nil
}

// spread counts the groups whose identifiers the other graph puts on more
// than one profile, with a few examples in words.
func spread(groups map[int64][]Identifier, other graph) (int, []string) {
	keys := make([]int64, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })

	count := 0
	var examples []string
	for _, key := range keys {
		parts := map[int64][]string{}
		for _, id := range groups[key] {
			if profile, ok := other[id]; ok {
				parts[profile] = append(parts[profile], id.String())
			}
		}
		if len(parts) < 2 {
			continue
		}
		count++
		if len(examples) < previewExamples {
			examples = append(examples, describeParts(parts))
		}
	}
	return count, examples
}

func describeParts(parts map[int64][]string) string {
	var out []string
	for _, ids := range parts {
		sort.Strings(ids)
		out = append(out, "{"+strings.Join(ids, ", ")+"}")
	}
	sort.Strings(out)
	return strings.Join(out, " + ")
}

// copyBlocks carries the identifiers unlinked so far into the scratch
// database, so the preview keeps them unlinked.
func copyBlocks(ctx context.Context, db, scratch *sqldb.DB) error {
	var blocks []struct {
		Type   string `db:"type"`
		Value  string `db:"value"`
		Reason string `db:"reason"`
		AtMS   int64  `db:"at_ms"`
	}
	if err := db.SelectContext(ctx, &blocks,
		`SELECT type, value, reason, at_ms FROM identity_blocks`); err != nil {
		return fmt.Errorf("read unlinked identifiers: %w", err)
	}
	for _, b := range blocks {
		_, err := scratch.ExecContext(ctx, scratch.Rebind(`INSERT INTO identity_blocks
			(type, value, reason, at_ms) VALUES (?, ?, ?, ?)`), b.Type, b.Value, b.Reason, b.AtMS)
		if err != nil {
			return fmt.Errorf("copy unlinked identifier: %w", err)
		}
	}
	return nil
}

// missingFrom counts the identifiers of a that b lacks, with examples.
func missingFrom(a, b graph) (int, []string) {
	var missing []string
	for id := range a {
		if _, held := b[id]; !held {
			missing = append(missing, id.String())
		}
	}
	sort.Strings(missing)
	return len(missing), missing[:min(len(missing), previewExamples)]
}
