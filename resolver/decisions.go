package resolver

import (
	"context"
	"fmt"
	"strings"
)

// Kinds of identity decisions, each recorded with the message that caused
// it and the rule involved.
const (
	DecisionCreated  = "created"          // a new profile for the message
	DecisionAttached = "attached"         // an identifier joined a profile
	DecisionMerged   = "merged"           // two profiles became one
	DecisionLimit    = "dropped_by_limit" // an identifier kept off by a limit
	DecisionBlocked  = "dropped_blocked"  // a value that is never an identifier
)

// decision is one choice the resolver made for a message; profile 0 means
// the profile the message finally landed on.
type decision struct {
	kind       string
	profile    int64
	identifier Identifier
	other      int64
	rule       string
	detail     string
}

// record remembers a decision, written when the message is stored.
func (w *writer) record(d decision) { w.decisions = append(w.decisions, d) }

// writeDecisions stores the message's decisions and its identity links.
func (w *writer) writeDecisions(ctx context.Context, m *Message, profile int64,
	linked []Identifier) error {
	for _, id := range linked {
		_, err := w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO identity_links
			(message_id, type, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`),
			m.ID, id.Type, id.Value)
		if err != nil {
			return fmt.Errorf("record identity link %s: %w", id, err)
		}
	}

	for _, d := range w.decisions {
		target := d.profile
		if target == 0 {
			target = profile
		}
		_, err := w.tx.ExecContext(ctx, w.tx.Rebind(`INSERT INTO identity_decisions
			(profile_id, kind, message_id, identifier, other_profile_id, rule,
			 detail, event_ms, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			nullable(target), d.kind, m.ID, identifierText(d.identifier),
			nullable(d.other), d.rule, d.detail, m.Timestamp.UnixMilli(),
			w.now.UnixMilli())
		if err != nil {
			return fmt.Errorf("record %s decision: %w", d.kind, err)
		}
	}
	w.decisions = w.decisions[:0]
	return nil
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func identifierText(id Identifier) string {
	if id.Type == "" {
		return ""
	}
	return id.String()
}

func listIdentifiers(ids []Identifier) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id.String()
	}
	return strings.Join(parts, ", ")
}
