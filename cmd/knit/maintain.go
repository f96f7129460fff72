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

// maintainUntilDone keeps the event partitions ready and drops months past
// retention, at start and then daily, until ctx ends.
func maintainUntilDone(ctx context.Context, db *sqldb.DB, now func() time.Time,
	keepMonths int, log *slog.Logger) {
	tick := time.NewTicker(24 * time.Hour)
	defer tick.Stop()
	for {
		dropped, err := resolver.MaintainEvents(ctx, db, now(), keepMonths)
		if err != nil && ctx.Err() == nil {
			log.Error("maintain event partitions", "error", err)
		}
		for _, name := range dropped {
			log.Info("dropped events past retention", "partition", name,
				"retention_months", keepMonths)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
