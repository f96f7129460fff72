package resolver

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// monthPartition matches the names of the monthly partitions of events.
var monthPartition = regexp.MustCompile(`^events_([0-9]{4})_([0-9]{2})$`)

// partitionsAhead is how many months beyond the current one have their
// partition ready, so a month never starts without one.
const partitionsAhead = 2

// MaintainEvents prepares the monthly partitions of events for the current
// month and the next ones, and, when keepMonths is above 0, drops the
// partitions of months that ended more than keepMonths whole months before
// now, events and all. It reports the partitions dropped. Only PostgreSQL
// partitions events; on SQLite it does nothing.
func MaintainEvents(ctx context.Context, db *sqldb.DB, now time.Time,
	keepMonths int) ([]string, error) {
	if db.Dialect() != sqldb.Postgres {
		return nil, nil
	}
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for ahead := 0; ahead <= partitionsAhead; ahead++ {
		if _, err := db.ExecContext(ctx, "SELECT knit_event_month($1)",
			month.AddDate(0, ahead, 0)); err != nil {
			return nil, fmt.Errorf("prepare event partitions: %w", err)
		}
	}
	if keepMonths <= 0 {
		return nil, nil
	}
	return dropMonthsBefore(ctx, db, month.AddDate(0, -keepMonths, 0))
}

// dropMonthsBefore drops the monthly partitions of months before cutoff.
func dropMonthsBefore(ctx context.Context, db *sqldb.DB, cutoff time.Time) ([]string, error) {
	var names []string
	err := db.SelectContext(ctx, &names, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relname = 'events' AND p.relnamespace = current_schema()::regnamespace
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list event partitions: %w", err)
	}

	var dropped []string
	for _, name := range names {
		parts := monthPartition.FindStringSubmatch(name)
		if parts == nil {
			continue // the default partition
		}
		start, err := time.Parse("2006-01", parts[1]+"-"+parts[2])
		if err != nil || !start.Before(cutoff) {
			continue
		}
		// The name comes from the catalog and matched monthPartition.
		if _, err := db.ExecContext(ctx, "DROP TABLE "+name); err != nil {
			return dropped, fmt.Errorf("drop %s: %w", name, err)
		}
		dropped = append(dropped, name)
	}
	return dropped, nil
}
