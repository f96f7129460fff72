package audiences

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestNumbersBelowTheSmallestDoubleReadAsZero stores numbers too near zero
// for a double (1e-400, -1e-400, 2e-324) as an event's key: both
// engines read them as "0", as SQLite's parser rounds them. PostgreSQL
// failed the whole audience ("out of range for type double precision").
func TestNumbersBelowTheSmallestDoubleReadAsZero(t *testing.T) {
	values := []json.Number{"1e-400", "-1e-400", "2e-324"}
	dbs := openEngines(t)
	for _, db := range dbs {
		for i, v := range values {
			mustStorePerson(t, db, int64(i+1),
				[]testEvent{ev("A", ago(day), "x", v)})
		}
	}

	keys := dbs.members(t, conditionDef(t, `then_not:
  first: {event: A, key: x}
  not_followed_by: [{event: Z, key: x}]
attributes: {k: keys}`))

	for i, v := range values {
		got, _ := keys[int64(i+1)]["k"].([]string)
		if !reflect.DeepEqual(got, []string{"0"}) {
			t.Errorf("%s as a key: got %q, want [0]", v, got)
		}
	}
}
