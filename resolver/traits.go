package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Traits are stored one row per leaf: a nested object is flattened into
// paths whose levels are joined by traitPathSep, so that each field keeps
// the time of the message that set it and merges field by field. A null
// marks its whole path removed as of that time.
const traitPathSep = "\x1f"

// traitLeaf is one stored trait field.
type traitLeaf struct {
	path  string
	value []byte // JSON: a scalar, an array, null or {}
}

// flattenTraits turns identify traits into leaves. Control characters are
// dropped from keys (they would clash with the path separator).
func flattenTraits(prefix string, value any, out *[]traitLeaf) error {
	if object, ok := value.(map[string]any); ok && len(object) > 0 {
		for _, key := range sortedKeys(object) {
			child := object[key]
			clean := strings.Map(func(c rune) rune {
				if c < 0x20 || c == 0x7f {
					return -1
				}
				return c
			}, key)
			path := clean
			if prefix != "" {
				path = prefix + traitPathSep + clean
			}
			if err := flattenTraits(path, child, out); err != nil {
				return err
			}
		}
		return nil
	}
	encoded, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encode trait %q: %w", prefix, err)
	}
	*out = append(*out, traitLeaf{path: prefix, value: encoded})
	return nil
}

// setTraits applies an identify call's traits field by field: a field takes
// the new value only if its event time is at least as late as the stored
// one, so messages that arrive out of order never roll a trait back.
func (w *writer) setTraits(ctx context.Context, profile int64, m *Message) error {
	var leaves []traitLeaf
	if err := flattenTraits("", map[string]any(m.Traits), &leaves); err != nil {
		return err
	}
	sort.SliceStable(leaves, func(i, j int) bool { return leaves[i].path < leaves[j].path })

	for _, leaf := range leaves {
		if leaf.path == "" {
			continue
		}
		err := w.setTrait(ctx,
			profile, leaf.path, string(leaf.value), m.Timestamp.UnixMilli(), m.ID)
		if err != nil {
			return fmt.Errorf("set trait %q: %w", readablePath(leaf.path), err)
		}
	}
	return nil
}

func readablePath(path string) string { return strings.ReplaceAll(path, traitPathSep, ".") }

// traitRow is one stored trait leaf.
type traitRow struct {
	Path      string `db:"key"`
	Value     string `db:"value"`
	UpdatedMS int64  `db:"ts_ms"`
	MessageID string `db:"message_id"`
	Source    string `db:"source"`
}

// Traits returns a profile's traits by top-level key, sorted, with nested
// objects assembled from their fields. A field shows when no newer value
// replaced or removed it on the way to it; removed traits are left out. A
// trait's time and source are those of its newest field.
func (p *Profiles) Traits(ctx context.Context, profile int64) ([]Trait, error) {
	var rows []traitRow
	err := p.db.SelectContext(ctx, &rows, p.db.Rebind(
		`SELECT t.key, t.value, t.ts_ms, t.message_id, COALESCE(e.source, '') AS source
		 FROM traits t LEFT JOIN events e ON e.message_id = t.message_id
		 WHERE t.profile_id = ? ORDER BY t.key`), profile)
	if err != nil {
		return nil, fmt.Errorf("list traits of profile %d: %w", profile, err)
	}
	return assembleTraits(visibleRows(rows))
}

// TraitsIn returns the traits of each of profiles that has any, as Traits
// gives them but without their sources (every Source is ""): for a
// profile merged into another, those of the profile it was merged into,
// which holds them now. It reads them by one query through snapshot, a
// transaction the caller holds; keep profiles to a page (a thousand or
// so), since each is a parameter of the query.
func TraitsIn(ctx context.Context, snapshot *sqlx.Tx,
	profiles []int64) (map[int64][]Trait, error) {
	out := make(map[int64][]Trait, len(profiles))
	if len(profiles) == 0 {
		return out, nil
	}
	query, args, err := sqlx.In(`SELECT p.id AS profile_id, t.key, t.value, t.ts_ms,
		t.message_id FROM profiles p
		JOIN traits t ON t.profile_id = COALESCE(p.merged_into, p.id)
		WHERE p.id IN (?) ORDER BY p.id, t.key`, profiles)
	if err != nil {
		return nil, fmt.Errorf("build traits query: %w", err)
	}
	var rows []profileTraitRow
	err = snapshot.SelectContext(ctx, &rows, snapshot.Rebind(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list traits of %d profiles: %w", len(profiles), err)
	}

	for len(rows) > 0 {
		profile, end := rows[0].ProfileID, 1
		for end < len(rows) && rows[end].ProfileID == profile {
			end++
		}
		traits, err := assembleTraits(visibleRows(traitRowsOf(rows[:end])))
		if err != nil {
			return nil, fmt.Errorf("traits of profile %d: %w", profile, err)
		}
		out[profile], rows = traits, rows[end:]
	}
	return out, nil
}

// profileTraitRow is a stored trait leaf with its profile.
type profileTraitRow struct {
	ProfileID int64 `db:"profile_id"`
	traitRow
}

func traitRowsOf(rows []profileTraitRow) []traitRow {
	out := make([]traitRow, len(rows))
	for i, r := range rows {
		out[i] = r.traitRow
	}
	return out
}

// visibleRows keeps the rows no newer write above or below them replaced:
// a field under an older parent value shows (the parent became an object),
// a parent value older than some field under it does not.
// Times before 1970 are negative, so a missing entry is never taken for 0.
func visibleRows(rows []traitRow) []traitRow {
	newestBelow := map[string]int64{}
	for _, r := range rows {
		for _, ancestor := range ancestors(r.Path) {
			if at, seen := newestBelow[ancestor]; !seen || r.UpdatedMS > at {
				newestBelow[ancestor] = r.UpdatedMS
			}
		}
	}
	stamp := map[string]int64{}
	for _, r := range rows {
		stamp[r.Path] = r.UpdatedMS
	}

	var visible []traitRow
	for _, r := range rows {
		below, anyBelow := newestBelow[r.Path]
		hidden := anyBelow && below > r.UpdatedMS
		for _, ancestor := range ancestors(r.Path) {
			if at, set := stamp[ancestor]; set && at > r.UpdatedMS {
				hidden = true
			}
		}
		if !hidden {
			visible = append(visible, r)
		}
	}
	return visible
}

// ancestors lists the paths above path, nearest last.
func ancestors(path string) []string {
	parts := strings.Split(path, traitPathSep)
	out := make([]string, 0, len(parts)-1)
	for i := 1; i < len(parts); i++ {
		out = append(out, strings.Join(parts[:i], traitPathSep))
	}
	return out
}

func assembleTraits(rows []traitRow) ([]Trait, error) {
	root := map[string]any{}
	newest := map[string]traitRow{}
	for _, r := range rows {
		if r.Value == "null" {
			continue
		}
		// Numbers stay as written: no overflow, no lost digits.
		var value any
		dec := json.NewDecoder(strings.NewReader(r.Value))
		dec.UseNumber()
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("decode trait %q: %w", readablePath(r.Path), err)
		}
		placeLeaf(root, strings.Split(r.Path, traitPathSep), value)
		top, _, _ := strings.Cut(r.Path, traitPathSep)
		if n, seen := newest[top]; !seen || r.UpdatedMS >= n.UpdatedMS {
			newest[top] = r
		}
	}

	traits := make([]Trait, 0, len(root))
	for _, key := range sortedKeys(root) {
		encoded, err := json.Marshal(root[key])
		if err != nil {
			return nil, fmt.Errorf("encode trait %q: %w", key, err)
		}
		n := newest[key]
		traits = append(traits, Trait{Key: key, Value: encoded, Text: string(encoded),
			UpdatedMS: n.UpdatedMS, MessageID: n.MessageID, Source: n.Source,
			UpdatedAt: time.UnixMilli(n.UpdatedMS).UTC()})
	}
	return traits, nil
}

// placeLeaf sets value at path inside root, making objects on the way; a
// legacy whole-object row merges with fields stored under it.
func placeLeaf(root map[string]any, path []string, value any) {
	node := root
	for _, key := range path[:len(path)-1] {
		child, ok := node[key].(map[string]any)
		if !ok {
			child = map[string]any{}
			node[key] = child
		}
		node = child
	}
	last := path[len(path)-1]
	if existing, ok := node[last].(map[string]any); ok {
		if incoming, isObject := value.(map[string]any); isObject {
			for k, v := range incoming {
				if _, set := existing[k]; !set {
					existing[k] = v
				}
			}
			return
		}
	}
	node[last] = value
}
