package audiences

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// Destination receives an audience's entries and exits as Segment messages,
// as Segment's Engage sends them: an identify with {"<audience>": true|false}
// or a track "Audience Entered" / "Audience Exited" with audience_key.
type Destination struct {
	URL string `yaml:"url"`
	// Style is "identify" (the default) or "track".
	Style string `yaml:"style"`
	// Secret signs each body with X-Signature (hex HMAC-SHA1), as Segment's
	// webhooks do; WriteKey is sent as the HTTP Basic user name, as Segment's
	// tracking API takes it. Either, both or neither.
	Secret   string `yaml:"secret"`
	WriteKey string `yaml:"write_key"`
	// GiveUpAfter is how long a message is retried before it is marked
	// failed; 24 hours when unset.
	GiveUpAfter Duration `yaml:"give_up_after"`
}

// key names a destination across config edits: its URL and style.
func (d Destination) key() string { return strings.TrimSpace(d.URL) + " " + d.style() }

func (d Destination) style() string {
	if d.Style == "" {
		return "identify"
	}
	return d.Style
}

// Request is one delivery attempt as the edge sends it.
type Request struct {
	URL     string
	Headers map[string]string
	Body    []byte
}

// Sender sends a request and reports the HTTP status, or an error when no
// answer came (the network failed). The HTTP edge implements it.
type Sender interface {
	Send(ctx context.Context, r Request) (status int, err error)
}

// enqueue writes one outbox message per destination and change, in the
// transaction that saves the run.
func (r *Runner) enqueue(ctx context.Context, tx *sqlx.Tx, def Definition, run Run,
	entered, exited []memberRow) error {
	insert := newBatchInsert(tx, "outbox", []string{"audience", "destination",
		"message_id", "body", "created_ms", "next_attempt_ms"},
		"ON CONFLICT (message_id) DO NOTHING")
	for _, dest := range def.Destinations {
		for _, change := range []struct {
			kind    string
			members []memberRow
		}{{Exited, exited}, {Entered, entered}} {
			for _, row := range change.members {
				m, err := row.member()
				if err != nil {
					return err
				}
				err = r.enqueueOne(ctx, insert, def.Name, dest, run, change.kind, m)
				if err != nil {
					return err
				}
			}
		}
	}
	if err := insert.flush(ctx); err != nil {
		return fmt.Errorf("queue deliveries: %w", err)
	}
	return nil
}

func (r *Runner) enqueueOne(ctx context.Context, insert *batchInsert, audience string,
	dest Destination, run Run, kind string, m Member) error {
	key := fmt.Sprintf("%s/%s/%d/%s/%d", audience, dest.key(), run.ID, kind, m.ProfileID)
	sum := sha256.Sum256([]byte(key))
	messageID := "knit-" + hex.EncodeToString(sum[:16])
	body, err := json.Marshal(segmentMessage(audience, dest.style(), kind, messageID, run, m))
	if err != nil {
		return fmt.Errorf("encode delivery of %d: %w", m.ProfileID, err)
	}
	now := r.now().UnixMilli()
	err = insert.add(ctx, audience, dest.key(), messageID, string(body), now, now)
	if err != nil {
		return fmt.Errorf("queue delivery of %d: %w", m.ProfileID, err)
	}
	return nil
}

// segmentMessage builds the message a destination receives for a change.
func segmentMessage(audience, style, kind, messageID string, run Run, m Member) map[string]any {
	in := kind == Entered
	traits := map[string]any{}
	if m.Email != "" { // a blank would erase the receiver's email
		traits["email"] = m.Email
	}
	msg := map[string]any{
		"messageId": messageID,
		"timestamp": FormatTime(run.EvaluatedAt),
		"context": map[string]any{
			"traits":   traits,
			"personas": map[string]any{"computation_class": "audience", "computation_key": audience},
		},
	}
	if m.UserID != "" {
		msg["userId"] = m.UserID
	}
	if anon := m.Identifiers["anonymous_id"]; len(anon) > 0 {
		msg["anonymousId"] = anon[0]
	} else if m.UserID == "" {
		msg["anonymousId"] = "knit-profile-" + strconv.FormatInt(m.ProfileID, 10)
	}
	if style == "track" {
		msg["type"], msg["event"] = "track", map[bool]string{true: "Audience Entered",
			false: "Audience Exited"}[in]
		msg["properties"] = map[string]any{"audience_key": audience, audience: in}
		return msg
	}
	msg["type"] = "identify"
	identify := map[string]any{audience: in}
	if m.Email != "" {
		identify["email"] = m.Email
	}
	msg["traits"] = identify
	return msg
}

// OutboxStats counts an audience's deliveries by state.
type OutboxStats struct {
	Pending   int `json:"pending" db:"pending"`
	Delivered int `json:"delivered" db:"delivered"`
	Failed    int `json:"failed" db:"failed"`
}

// Outbox counts the audience's deliveries.
func (r *Runner) Outbox(ctx context.Context, audience string) (OutboxStats, error) {
	var stats OutboxStats
	err := r.db.GetContext(ctx, &stats, r.db.Rebind(`SELECT
		COALESCE(SUM(CASE WHEN delivered_ms IS NULL AND failed_ms IS NULL
		                  THEN 1 ELSE 0 END), 0) AS pending,
		COALESCE(SUM(CASE WHEN delivered_ms IS NOT NULL THEN 1 ELSE 0 END), 0) AS delivered,
		COALESCE(SUM(CASE WHEN failed_ms IS NOT NULL THEN 1 ELSE 0 END), 0) AS failed
		FROM outbox WHERE audience = ?`), audience)
	if err != nil {
		return stats, fmt.Errorf("count deliveries of %s: %w", audience, err)
	}
	return stats, nil
}

// retryable reports whether a status is worth retrying, as Segment decides
// for its own destinations: 408, 429 and 5xx except 501.
func retryable(status int) bool {
	return status == 408 || status == 429 || (status >= 500 && status != 501)
}

// backoff is the wait after the given number of failed attempts: 30 s
// doubling, at most an hour.
func backoff(attempts int) time.Duration {
	wait := 30 * time.Second << min(attempts-1, 7)
	return min(wait, time.Hour)
}

// outboxRow is a message due for delivery.
type outboxRow struct {
	ID          int64  `db:"id"`
	Audience    string `db:"audience"`
	Destination string `db:"destination"`
	Body        string `db:"body"`
	CreatedMS   int64  `db:"created_ms"`
	Attempts    int    `db:"attempts"`
}

// DeliverDue sends the messages whose time has come and records each
// outcome: delivered, retried later with backoff, or failed (a 4xx Segment
// would not retry, or retried past its destination's give-up time).
// Destinations are served side by side, each in the order its messages
// were queued, at most batch messages each; a destination's turn ends at
// its first failure, so a receiver that is down or slow holds up no other.
// It returns how many messages it attempted.
func (r *Runner) DeliverDue(ctx context.Context, sender Sender, batch int) (int, error) {
	var destinations []string
	err := r.db.SelectContext(ctx, &destinations, r.db.Rebind(`SELECT DISTINCT destination
		FROM outbox WHERE delivered_ms IS NULL AND failed_ms IS NULL
		AND next_attempt_ms <= ? ORDER BY destination`), r.now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("read due destinations: %w", err)
	}

	attempted := make([]int, len(destinations))
	errs := make([]error, len(destinations))
	var wg sync.WaitGroup
	for i, dest := range destinations {
		wg.Go(func() {
			attempted[i], errs[i] = r.deliverTo(ctx, sender, dest, batch)
		})
	}
	wg.Wait()

	total := 0
	for _, n := range attempted {
		total += n
	}
	return total, errors.Join(errs...)
}

// deliverTo sends one destination's due messages in order until one fails
// or batch have been tried, and returns how many it tried.
func (r *Runner) deliverTo(ctx context.Context, sender Sender, destination string,
	batch int) (int, error) {
	var due []outboxRow
	err := r.db.SelectContext(ctx, &due, r.db.Rebind(`SELECT id, audience, destination,
		body, created_ms, attempts FROM outbox
		WHERE destination = ? AND delivered_ms IS NULL AND failed_ms IS NULL
		AND next_attempt_ms <= ? ORDER BY id LIMIT ?`),
		destination, r.now().UnixMilli(), batch)
	if err != nil {
		return 0, fmt.Errorf("read due deliveries: %w", err)
	}

	tried := 0
	for _, row := range due {
		claimed, err := r.claim(ctx, row)
		if err != nil {
			return tried, err
		}
		if !claimed {
			continue // another loop or process took it
		}
		tried++
		settled, err := r.deliver(ctx, sender, row)
		if err != nil || !settled {
			return tried, err
		}
	}
	return tried, nil
}

// claimLease is how long a claimed message is left to its sender before
// another may try it: longer than one send may take.
const claimLease = 2 * time.Minute

// claim takes a due message for this sender by moving its next attempt past
// the lease, atomically, so no two senders send it at once.
func (r *Runner) claim(ctx context.Context, row outboxRow) (bool, error) {
	now := r.now().UnixMilli()
	result, err := r.db.ExecContext(ctx, r.db.Rebind(`UPDATE outbox SET next_attempt_ms = ?
		WHERE id = ? AND next_attempt_ms <= ? AND delivered_ms IS NULL AND failed_ms IS NULL`),
		r.now().Add(claimLease).UnixMilli(), row.ID, now)
	if err != nil {
		return false, fmt.Errorf("claim delivery %d: %w", row.ID, err)
	}
	n, err := result.RowsAffected()
	return n == 1, err
}

// deliver sends one claimed message and records the outcome. It reports
// whether the message is settled (delivered, or failed for good); false
// means the receiver is failing and the message will be retried.
func (r *Runner) deliver(ctx context.Context, sender Sender, row outboxRow) (bool, error) {
	dest, found := r.destination(row)
	// What happened is recorded even when shutdown cancels ctx mid-send.
	record := context.WithoutCancel(ctx)
	if !found {
		return true, r.failDelivery(record, row, dest,
			"the destination is no longer configured")
	}
	status, sendErr := sender.Send(ctx, request(dest, []byte(row.Body)))
	ctx = record

	switch {
	case sendErr == nil && status >= 200 && status < 300:
		return true, r.settleDelivery(ctx, row, "delivered", "")
	case sendErr == nil && !retryable(status):
		return true, r.failDelivery(ctx, row, dest, fmt.Sprintf("answered %d", status))
	}
	return false, r.retryLater(ctx, dest, row, status, sendErr)
}

// retryLater reschedules a message the receiver did not take, or gives up
// on it when its destination's time has passed.
func (r *Runner) retryLater(ctx context.Context, dest Destination, row outboxRow,
	status int, sendErr error) error {
	reason := fmt.Sprintf("answered %d", status)
	if sendErr != nil {
		reason = sendErr.Error()
	}
	giveUp := time.Duration(dest.GiveUpAfter)
	if giveUp == 0 {
		giveUp = 24 * time.Hour
	}
	// Give up only after some retries, so a backlog after downtime still
	// gets its chances.
	if row.Attempts+1 >= minAttempts && r.now().Sub(time.UnixMilli(row.CreatedMS)) >= giveUp {
		return r.failDelivery(ctx, row, dest, "gave up after retries: "+reason)
	}
	_, err := r.db.ExecContext(ctx, r.db.Rebind(`UPDATE outbox SET attempts = attempts + 1,
		next_attempt_ms = ?, last_error = ? WHERE id = ?`),
		r.now().Add(backoff(row.Attempts+1)).UnixMilli(), reason, row.ID)
	if err != nil {
		return fmt.Errorf("reschedule delivery %d: %w", row.ID, err)
	}
	return nil
}

// minAttempts is how many times a message is tried before it may be given
// up on.
const minAttempts = 3

// destination finds the configured destination a message was queued for.
func (r *Runner) destination(row outboxRow) (Destination, bool) {
	def, err := r.Definition(row.Audience)
	if err != nil {
		return Destination{}, false
	}
	for _, dest := range def.Destinations {
		if dest.key() == row.Destination {
			return dest, true
		}
	}
	return Destination{}, false
}

func (r *Runner) settleDelivery(ctx context.Context, row outboxRow, outcome, reason string) error {
	column := map[string]string{"delivered": "delivered_ms", "failed": "failed_ms"}[outcome]
	_, err := r.db.ExecContext(ctx, r.db.Rebind(`UPDATE outbox SET `+column+` = ?,
		attempts = attempts + 1, last_error = ? WHERE id = ?`),
		r.now().UnixMilli(), reason, row.ID)
	if err != nil {
		return fmt.Errorf("record delivery %d: %w", row.ID, err)
	}
	return nil
}

// failDelivery records that a message will not be sent again, and logs
// it as a warning: nothing else tells an operator that a receiver refused
// it. The log names the destination's URL with its secrets hidden.
func (r *Runner) failDelivery(ctx context.Context, row outboxRow, dest Destination,
	reason string) error {
	if r.log != nil {
		r.log.Warn("audience delivery failed", "audience", row.Audience,
			"outbox_id", row.ID, "destination_url", dest.redacted().URL,
			"attempts", row.Attempts+1, "reason", reason)
	}
	return r.settleDelivery(ctx, row, "failed", reason)
}

// request builds the HTTP request for a delivery.
func request(dest Destination, body []byte) Request {
	headers := map[string]string{"Content-Type": "application/json"}
	if dest.Secret != "" {
		mac := hmac.New(sha1.New, []byte(dest.Secret))
		mac.Write(body)
		headers["X-Signature"] = hex.EncodeToString(mac.Sum(nil))
	}
	if dest.WriteKey != "" {
		headers["Authorization"] = "Basic " +
			base64.StdEncoding.EncodeToString([]byte(dest.WriteKey+":"))
	}
	return Request{URL: strings.TrimSpace(dest.URL), Headers: headers, Body: body}
}
