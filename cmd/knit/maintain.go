package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb"
)

// parseRetention reads KNIT_EVENT_RETENTION_MONTHS: whole months of events
// to keep beyond the current one on PostgreSQL; empty or 0 keeps them all.
func parseRetention(text string) (int, error) {
	if strings.TrimSpace(text) == "" {
		return 0, nil
	}
	months, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || months < 0 {
		return 0, fmt.Errorf("%w: KNIT_EVENT_RETENTION_MONTHS %q: want a whole number of "+
			"months, 0 to keep every event", errUsage, text)
	}
	return months, nil
}

// upkeepInterval is how often a process with the scheduler role looks after
// the events table: its partitions, its retention and its statistics.
const upkeepInterval = time.Hour

// maintainUntilDone looks after the events table at start and then every
// upkeepInterval, until ctx ends.
func maintainUntilDone(ctx context.Context, db *sqldb.DB, now func() time.Time,
	keepMonths int, log *slog.Logger) {
	tick := time.NewTicker(upkeepInterval)
	defer tick.Stop()
	for {
		maintainOnce(ctx, db, now(), keepMonths, log)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// maintainOnce keeps the event partitions ready, drops months past
// retention and analyzes events when its statistics are missing or out of
// date. It logs what it did and what failed; each step runs whatever the
// others did.
func maintainOnce(ctx context.Context, db *sqldb.DB, now time.Time, keepMonths int,
	log *slog.Logger) {
	dropped, err := resolver.MaintainEvents(ctx, db, now, keepMonths)
	if err != nil && ctx.Err() == nil {
		log.Error("maintain event partitions", "error", err)
	}
	for _, name := range dropped {
		log.Info("dropped events past retention", "partition", name,
			"retention_months", keepMonths)
	}

	analyzed, err := resolver.RefreshEventStatistics(ctx, db)
	if err != nil && ctx.Err() == nil {
		log.Error("refresh the statistics of events", "error", err)
	}
	if analyzed {
		log.Info("analyzed events", "reason", "statistics missing or out of date")
	}
}
