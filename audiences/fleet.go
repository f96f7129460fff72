package audiences

import (
	"context"
	"fmt"
	"time"
)

// slotsKept is how long claimed slots are remembered: far longer than any
// gap between processes firing the same tick.
const slotsKept = 7 * 24 * time.Hour

// claimSlot records that this process computes name's run scheduled for
// slot (a minute), and reports false when another process of the fleet
// claimed that slot first. Every process fires the same schedule; exactly
// one computes each scheduled run.
func (r *Runner) claimSlot(ctx context.Context, name string, slot time.Time) (bool, error) {
	result, err := r.db.ExecContext(ctx, r.db.Rebind(`INSERT INTO audience_slots
		(audience, slot_ms, claimed_ms) VALUES (?, ?, ?)
		ON CONFLICT (audience, slot_ms) DO NOTHING`),
		name, slot.UnixMilli(), time.Now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("claim the %s run of %s: %w", slot.Format(time.RFC3339),
			name, err)
	}
	claimed, err := result.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim the run of %s: %w", name, err)
	}

	_, err = r.db.ExecContext(ctx, r.db.Rebind(`DELETE FROM audience_slots
		WHERE audience = ? AND slot_ms < ?`), name, slot.Add(-slotsKept).UnixMilli())
	if err != nil {
		return false, fmt.Errorf("forget old slots of %s: %w", name, err)
	}
	return claimed == 1, nil
}
