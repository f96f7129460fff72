package resolver

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// resolve finds or makes the profile a message belongs to, as Segment Unify
// does: no profile holds any of its identifiers -> a new profile; one does ->
// attach; several do -> merge them. When the result would hold more values
// of a type than the rules allow, the message's lowest-priority identifier
// type is dropped and matching starts again, so a shared device never fuses
// two identified people. previous (an alias call's previousId) is tried
// first and dropped first. It returns 0 when no identifier is left.
func (w *writer) resolve(ctx context.Context, m *Message,
	ids, previous []Identifier) (int64, error) {
	previous = slices.DeleteFunc(previous, func(p Identifier) bool {
		return slices.Contains(ids, p)
	})
	if len(previous) > 0 {
		all := append(append([]Identifier{}, ids...), previous...)
		profile, broke, err := w.place(ctx, m, all)
		if err != nil || broke == nil {
			return profile, err
		}
		w.recordDropped(previous, *broke, "the alias's previousId was left out")
	}

	for len(ids) > 0 {
		profile, broke, err := w.place(ctx, m, ids)
		if err != nil || broke == nil {
			return profile, err
		}
		var dropped []Identifier
		ids, dropped = dropLowestType(ids)
		w.recordDropped(dropped, *broke,
			"the message's least trusted identifier type was left out and matching ran again")
	}
	return 0, nil
}

// brokenLimit names the limit that kept identifiers apart.
type brokenLimit struct {
	kind  string
	limit int
}

// place puts the message on a profile with ids, or reports the limit that
// placing them would break.
func (w *writer) place(ctx context.Context, m *Message,
	ids []Identifier) (int64, *brokenLimit, error) {
	owners, err := w.owners(ctx, ids)
	if err != nil {
		return 0, nil, err
	}
	profiles := distinctProfiles(owners)
	if len(profiles) == 0 {
		profile, err := w.createProfile(ctx, m, w.capped(ids))
		return profile, nil, err
	}

	held, err := w.identifiersOf(ctx, profiles)
	if err != nil {
		return 0, nil, err
	}
	if kind, limit, broken := w.breaksLimit(held, ids, m.Timestamp); broken {
		return 0, &brokenLimit{kind: kind, limit: limit}, nil
	}
	counts := map[int64]int{}
	for _, id := range held {
		counts[id.profile]++
	}
	profile, err := w.join(ctx, m, profiles, ids, owners, counts)
	return profile, nil, err
}

func (w *writer) recordDropped(dropped []Identifier, broke brokenLimit, detail string) {
	for _, id := range dropped {
		w.record(decision{kind: DecisionLimit, identifier: id, detail: detail,
			rule: fmt.Sprintf("limit: at most %d %s on a profile%s",
				broke.limit, broke.kind, w.windowText(broke.kind))})
	}
}

func (w *writer) windowText(kind string) string {
	window := w.rules.Windows[kind]
	if window == 0 {
		return ""
	}
	if days := window / (24 * time.Hour); days*24*time.Hour == window {
		return fmt.Sprintf(" seen within %d days", days)
	}
	return fmt.Sprintf(" seen within %s", window)
}

// lookupChunk bounds how many identifiers one lookup query names: SQLite
// refuses expressions nested deeper than 1,000, and a message may carry
// hundreds of external ids.
const lookupChunk = 100

// owners maps each identifier already held by a profile to that profile.
func (w *writer) owners(ctx context.Context, ids []Identifier) (map[Identifier]int64, error) {
	owners := map[Identifier]int64{}
	unknown := ids
	if w.cache != nil {
		unknown = nil
		for _, id := range ids {
			profile, known := w.cache.lookup(id)
			switch {
			case !known:
				unknown = append(unknown, id)
			case profile != 0:
				owners[id] = profile
			}
		}
	}

	found := map[Identifier]int64{}
	chunkSize := lookupChunk
	if w.dialect == sqldb.Postgres {
		chunkSize = 10 * lookupChunk // arrays: no limit on nesting
	}
	for start := 0; start < len(unknown); start += chunkSize {
		chunk := unknown[start:min(start+chunkSize, len(unknown))]
		if err := w.lookupOwners(ctx, chunk, found); err != nil {
			return nil, err
		}
	}
	if w.folds != nil { // a stored identifier of a folded profile is its survivor's
		for id, profile := range found {
			found[id] = w.folds.rootOf(profile)
		}
	}
	if w.cache != nil {
		w.cache.learnOwners(unknown, found)
	}
	for id, profile := range found {
		owners[id] = profile
	}
	return owners, nil
}

func (w *writer) lookupOwners(ctx context.Context, ids []Identifier,
	owners map[Identifier]int64) error {
	query, args := ownersQuery(w.dialect, ids)
	rows, err := w.query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("look up identifiers: %w", err)
	}
	defer rows.Close()

	for rows.Next() {
		var id Identifier
		var profile int64
		if err := rows.Scan(&id.Type, &id.Value, &profile); err != nil {
			return fmt.Errorf("scan identifier: %w", err)
		}
		owners[id] = profile
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read identifiers: %w", err)
	}
	return nil
}

func distinctProfiles(owners map[Identifier]int64) []int64 {
	seen := map[int64]bool{}
	var profiles []int64
	for _, profile := range owners {
		if !seen[profile] {
			seen[profile] = true
			profiles = append(profiles, profile)
		}
	}
	sort.Slice(profiles, func(i, j int) bool { return profiles[i] < profiles[j] })
	return profiles
}

// heldIdentifier is an identifier, the profile holding it and when it was
// last seen.
type heldIdentifier struct {
	Identifier
	profile    int64
	lastSeenMS int64
}

// identifiersOf returns every identifier held by any of profiles.
func (w *writer) identifiersOf(ctx context.Context, profiles []int64) ([]heldIdentifier, error) {
	if w.cache == nil {
		return w.readIdentifiersOf(ctx, profiles)
	}

	var held []heldIdentifier
	var unknown []int64
	for _, p := range profiles {
		list, known := w.cache.profileIdentifiers(p)
		if !known {
			unknown = append(unknown, p)
			continue
		}
		for _, entry := range list {
			held = append(held, *entry)
		}
	}
	if len(unknown) == 0 {
		return held, nil
	}
	if err := w.settleFoldsFor(ctx, unknown...); err != nil {
		return nil, err
	}
	read, err := w.readIdentifiersOf(ctx, unknown)
	if err != nil {
		return nil, err
	}
	w.cache.learnProfiles(unknown, read)
	return append(held, read...), nil
}

// readIdentifiersOf reads every identifier held by any of profiles.
func (w *writer) readIdentifiersOf(ctx context.Context,
	profiles []int64) ([]heldIdentifier, error) {
	query, args, err := identifiersOfQuery(w.dialect, profiles)
	if err != nil {
		return nil, err
	}

	var held []heldIdentifier
	rows, err := w.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("load profile identifiers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id heldIdentifier
		if err := rows.Scan(&id.Type, &id.Value, &id.profile, &id.lastSeenMS); err != nil {
			return nil, fmt.Errorf("scan profile identifier: %w", err)
		}
		held = append(held, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile identifiers: %w", err)
	}
	return held, nil
}

// identifiersOfQuery selects the type, value, holder and last sighting of
// every identifier profiles hold. On PostgreSQL each profile is a probe of
// the profile index: with no statistics (autovacuum off) the planner
// guesses that a few hundred profiles match most rows and reads the whole
// table, and a plan cached while the table was small keeps doing so.
func identifiersOfQuery(dialect sqldb.Dialect, profiles []int64) (string, []any, error) {
	if dialect == sqldb.Postgres {
		return `SELECT i.type, i.value, i.profile_id, i.last_seen_ms
			FROM unnest(CAST(? AS BIGINT[])) AS p(id)
			CROSS JOIN LATERAL (SELECT type, value, profile_id, last_seen_ms
				FROM identities WHERE profile_id = p.id OFFSET 0) AS i`,
			[]any{profiles}, nil
	}
	query, args, err := sqlx.In(`SELECT type, value, profile_id, last_seen_ms
		FROM identities WHERE profile_id IN (?)`, profiles)
	if err != nil {
		return "", nil, fmt.Errorf("build identifier query: %w", err)
	}
	return query, args, nil
}

// breaksLimit reports whether joining the incoming identifiers with the
// held ones would leave more values of some type than the rules allow on
// one profile, and which type and limit. A profile already over a limit
// (the rules became stricter since) is not worse off when nothing is added,
// so messages that only repeat its identifiers still land on it. A type with
// a time window counts only held values seen within it before at.
func (w *writer) breaksLimit(held []heldIdentifier, incoming []Identifier,
	at time.Time) (kind string, limit int, broken bool) {
	union := map[string]map[string]bool{}
	perProfile := map[string]map[int64]int{}
	add := func(id Identifier) {
		if union[id.Type] == nil {
			union[id.Type] = map[string]bool{}
		}
		union[id.Type][id.Value] = true
	}
	for _, id := range held {
		if window := w.rules.Windows[id.Type]; window > 0 &&
			id.lastSeenMS < at.Add(-window).UnixMilli() {
			continue // seen too long ago to count
		}
		add(id.Identifier)
		if perProfile[id.Type] == nil {
			perProfile[id.Type] = map[int64]int{}
		}
		perProfile[id.Type][id.profile]++
	}
	for _, id := range incoming {
		add(id)
	}

	for _, kind := range sortedKeys(union) {
		largest := 0
		for _, n := range perProfile[kind] {
			largest = max(largest, n)
		}
		values := union[kind]
		if len(values) > w.rules.Limit(kind) && len(values) > largest {
			return kind, w.rules.Limit(kind), true
		}
	}
	return "", 0, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dropLowestType removes every identifier of the least trusted type and
// returns what is kept and what was dropped; ids are sorted from most to
// least trusted.
func dropLowestType(ids []Identifier) (kept, dropped []Identifier) {
	lowest := ids[len(ids)-1].Type
	for _, id := range ids {
		if id.Type == lowest {
			dropped = append(dropped, id)
		} else {
			kept = append(kept, id)
		}
	}
	return kept, dropped
}

// capped keeps at most the allowed number of values of each type, for a
// message that alone carries more than a new profile may hold.
func (w *writer) capped(ids []Identifier) []Identifier {
	count := map[string]int{}
	kept := ids[:0:0]
	for _, id := range ids {
		if count[id.Type] < w.rules.Limit(id.Type) {
			count[id.Type]++
			kept = append(kept, id)
		}
	}
	return kept
}

func (w *writer) createProfile(ctx context.Context, m *Message, ids []Identifier) (int64, error) {
	profile, err := w.insertProfile(ctx)
	if err != nil {
		return 0, fmt.Errorf("create profile: %w", err)
	}
	if w.cache != nil {
		w.cache.newProfile(profile)
	}

	w.record(decision{kind: DecisionCreated, profile: profile,
		rule:   "no profile held any of the message's identifiers",
		detail: listIdentifiers(ids)})
	if err := w.attach(ctx, m, profile, ids, nil); err != nil {
		return 0, err
	}
	return profile, nil
}

// insertProfile adds an empty profile, with the batch's rows when the
// writer collects them, and returns its id.
func (w *writer) insertProfile(ctx context.Context) (int64, error) {
	profile, err := w.newProfileID(ctx)
	if err != nil {
		return 0, err
	}
	now := w.now.UnixMilli()
	if err := w.write(ctx, &bulkProfiles, profile, now, now); err != nil {
		return 0, err
	}
	if w.bulk == nil {
		return profile, w.advanceSequences(ctx)
	}
	return profile, nil
}

// join merges profiles into the oldest of them and attaches the message's
// identifiers that no profile held yet.
func (w *writer) join(ctx context.Context, m *Message, profiles []int64,
	ids []Identifier, owners map[Identifier]int64, counts map[int64]int) (int64, error) {
	survivor := profiles[0]
	merges := 0
	if len(profiles) > 1 { // counted only when a merge is on the table
		if err := w.readMergeCounts(ctx, profiles); err != nil {
			return 0, err
		}
		var err error
		if merges, err = w.mergeCount(ctx, survivor); err != nil {
			return 0, err
		}
	}
	for _, merged := range profiles[1:] {
		theirs, err := w.mergeCount(ctx, merged)
		if err != nil {
			return 0, err
		}
		if rule := w.mergeCap(merges+1+theirs, counts[survivor]+counts[merged]); rule != "" {
			w.record(decision{kind: DecisionCap, profile: survivor, other: merged, rule: rule,
				detail: "the profiles stay apart and the message lands on this one"})
			continue
		}
		merges += 1 + theirs
		counts[survivor] += counts[merged]
		w.recordMerge(ids, owners, survivor, merged)
		if err := w.merge(ctx, m, survivor, merged); err != nil {
			return 0, err
		}
	}

	if err := w.attach(ctx, m, survivor, ids, owners); err != nil {
		return 0, err
	}
	return survivor, nil
}

// mergeCap names the hard cap a merge would pass, or "".
func (w *writer) mergeCap(merges, identifiers int) string {
	switch {
	case merges > w.rules.MaxMerges:
		return fmt.Sprintf("cap: at most %d merges a profile", w.rules.MaxMerges)
	case identifiers > w.rules.MaxIdentifiers:
		return fmt.Sprintf("cap: at most %d identifiers a profile", w.rules.MaxIdentifiers)
	}
	return ""
}

// recordMerge explains a merge by the identifiers that bridged the two
// profiles: one the message shared with each.
func (w *writer) recordMerge(ids []Identifier, owners map[Identifier]int64,
	survivor, merged int64) {
	var onSurvivor, onMerged Identifier
	for _, id := range ids {
		switch owners[id] {
		case survivor:
			if onSurvivor.Type == "" {
				onSurvivor = id
			}
		case merged:
			if onMerged.Type == "" {
				onMerged = id
			}
		}
	}
	w.record(decision{kind: DecisionMerged, profile: survivor, other: merged,
		identifier: onMerged, rule: "one message carried identifiers of both profiles",
		detail: fmt.Sprintf("%s was on profile %d and %s on profile %d",
			onSurvivor, survivor, onMerged, merged)})
}

// readMergeCounts reads into the cache, in one query, how many profiles
// were merged into each of profiles it does not know yet: a merge needs
// the survivor's and the merged profile's, a round trip each before.
func (w *writer) readMergeCounts(ctx context.Context, profiles []int64) error {
	if w.cache == nil {
		return nil
	}
	var unknown []int64
	for _, p := range profiles {
		if _, known := w.cache.merges[p]; !known {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) < 2 {
		return nil // mergeCount asks for the one
	}
	if err := w.settleFoldsFor(ctx, unknown...); err != nil {
		return err
	}

	query, args, err := mergeCountsQuery(w.dialect, unknown)
	if err != nil {
		return err
	}
	var counts []struct {
		Profile int64 `db:"profile"`
		Merges  int   `db:"merges"`
	}
	if err := w.tx.SelectContext(ctx, &counts, w.tx.Rebind(query), args...); err != nil {
		return fmt.Errorf("count merges of %d profiles: %w", len(unknown), err)
	}
	for _, p := range unknown {
		w.cache.merges[p] = 0
	}
	for _, c := range counts {
		w.cache.merges[c.Profile] = c.Merges
	}
	return nil
}

// mergeCountsQuery counts the profiles merged into each of profiles, by
// the index on merged_into; on PostgreSQL as one array, so that one
// statement serves any number of profiles.
func mergeCountsQuery(dialect sqldb.Dialect, profiles []int64) (string, []any, error) {
	const counts = `SELECT merged_into AS profile, COUNT(*) AS merges FROM profiles
		WHERE merged_into `
	if dialect == sqldb.Postgres {
		return counts + `= ANY(CAST(? AS BIGINT[])) GROUP BY merged_into`,
			[]any{profiles}, nil
	}
	query, args, err := sqlx.In(counts+`IN (?) GROUP BY merged_into`, profiles)
	if err != nil {
		return "", nil, fmt.Errorf("build merge count query: %w", err)
	}
	return query, args, nil
}

// mergeCount is how many profiles were merged into profile.
func (w *writer) mergeCount(ctx context.Context, profile int64) (int, error) {
	if w.cache != nil {
		if n, known := w.cache.merges[profile]; known {
			return n, nil
		}
	}
	if err := w.settleFoldsFor(ctx, profile); err != nil {
		return 0, err
	}
	var n int
	err := w.get(ctx, &n, `SELECT COUNT(*) FROM profiles WHERE merged_into = ?`, profile)
	if err != nil {
		return 0, fmt.Errorf("count merges of profile %d: %w", profile, err)
	}
	if w.cache != nil {
		w.cache.merges[profile] = n
	}
	return n, nil
}

// attach adds the identifiers no profile held yet to profile, up to the
// identifier cap, and marks the ones it already holds as seen at the
// message's time.
func (w *writer) attach(ctx context.Context, m *Message, profile int64,
	ids []Identifier, owners map[Identifier]int64) error {
	at := m.Timestamp.UnixMilli()
	room, err := w.identifierRoom(ctx, profile, ids, owners)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, held := owners[id]; held {
			if err := w.markSeen(ctx, id, at); err != nil {
				return err
			}
			continue
		}
		if room == 0 {
			w.record(decision{kind: DecisionCap, profile: profile, identifier: id,
				rule: fmt.Sprintf("cap: at most %d identifiers a profile",
					w.rules.MaxIdentifiers),
				detail: "the identifier was not added; the message still lands here"})
			continue
		}
		room--
		err := w.addIdentity(ctx,
			id.Type, id.Value, profile, at, at, m.ID, m.Source, m.App, deviceLabel(m))
		if err != nil {
			return fmt.Errorf("attach %s: %w", id, err)
		}
		if w.cache != nil {
			w.cache.added(profile, id, at)
		}
		if owners != nil {
			w.record(decision{kind: DecisionAttached, profile: profile, identifier: id,
				rule: "the message's other identifiers are on this profile"})
		}
	}
	return nil
}

// identifierRoom is how many more identifiers profile may take; it reads
// the count only when the message brings new ones.
func (w *writer) identifierRoom(ctx context.Context, profile int64, ids []Identifier,
	owners map[Identifier]int64) (int, error) {
	fresh := 0
	for _, id := range ids {
		if _, held := owners[id]; !held {
			fresh++
		}
	}
	if fresh == 0 {
		return 0, nil
	}
	if w.cache != nil {
		if list, known := w.cache.profileIdentifiers(profile); known {
			return max(0, w.rules.MaxIdentifiers-len(list)), nil
		}
	}
	if err := w.settleFoldsFor(ctx, profile); err != nil {
		return 0, err
	}
	var count int
	err := w.get(ctx, &count, `SELECT COUNT(*) FROM identities WHERE profile_id = ?`, profile)
	if err != nil {
		return 0, fmt.Errorf("count identifiers of profile %d: %w", profile, err)
	}
	return max(0, w.rules.MaxIdentifiers-count), nil
}

// markSeen moves id's last sighting up to atMS; it writes nothing when
// the transaction already knows the identifier was seen as late.
func (w *writer) markSeen(ctx context.Context, id Identifier, atMS int64) error {
	if w.cache != nil {
		if last, known := w.cache.lastSeen(id); known && last >= atMS {
			return nil
		}
	}
	if w.laterSighting(id, atMS) {
		if w.cache != nil {
			w.cache.seen(id, atMS)
		}
		return nil
	}
	err := w.exec(ctx, `UPDATE identities
		SET last_seen_ms = ? WHERE type = ? AND value = ? AND last_seen_ms < ?`,
		atMS, id.Type, id.Value, atMS)
	if err != nil {
		return fmt.Errorf("mark %s seen: %w", id, err)
	}
	if w.cache != nil {
		w.cache.seen(id, atMS)
	}
	return nil
}

func deviceLabel(m *Message) string {
	if m.DeviceType == "" && m.DeviceID == "" {
		return ""
	}
	return strings.TrimPrefix(m.DeviceType+" "+m.DeviceID, " ")
}

// ownersQuery reads the owners of ids. PostgreSQL takes them as two arrays:
// one short statement whatever their number, where a long OR took longer
// to plan than to run; SQLite, which has no arrays, takes the OR.
func ownersQuery(dialect sqldb.Dialect, ids []Identifier) (string, []any) {
	if dialect != sqldb.Postgres {
		where, args := matchIdentifiers(ids)
		return `SELECT type, value, profile_id FROM identities WHERE ` + where, args
	}
	types := make([]string, len(ids))
	values := make([]string, len(ids))
	for i, id := range ids {
		types[i], values[i] = id.Type, id.Value
	}
	// OFFSET 0 keeps each identifier a probe of the primary key: joined
	// freely, a plan cached while the table was small scans it whole.
	return `SELECT k.type, k.value, i.profile_id
		FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[])) AS k(type, value)
		CROSS JOIN LATERAL (SELECT profile_id FROM identities
			WHERE type = k.type AND value = k.value OFFSET 0) AS i`, []any{types, values}
}

// matchIdentifiers is a WHERE condition matching rows whose (type, value) is
// one of ids, with its arguments; ids should be at most lookupChunk long.
func matchIdentifiers(ids []Identifier) (string, []any) {
	clauses := make([]string, len(ids))
	args := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		clauses[i] = "(type = ? AND value = ?)"
		args = append(args, id.Type, id.Value)
	}
	return strings.Join(clauses, " OR "), args
}
