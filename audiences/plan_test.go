package audiences

import (
	"regexp"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// leafScan is a query plan line that reads a whole table once per profile
// row: a leaf joined to profiles without an index.
var leafScan = regexp.MustCompile(`^SCAN \S+ LEFT-JOIN`)

// TestSQLiteJoinsEveryBuiltinLeafByIndex checks SQLite's plan for each
// built-in audience: every leaf table is looked up by profile, never
// scanned once per profile, which made shoe_reorder grow with the square
// of the profiles (10 s for 20,000 of them).
func TestSQLiteJoinsEveryBuiltinLeafByIndex(t *testing.T) {
	db := sqltest.MustOpenSQLite(t)
	for _, def := range Builtins() {
		compiled, err := compile(def, testNow(), sqliteDialect{})
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Split(queryPlan(t, db, compiled), "\n")
		for _, line := range plan {
			if leafScan.MatchString(line) {
				t.Errorf("%s scans a leaf for every profile (%s):\n%s", def.Name, line,
					strings.Join(plan, "\n"))
			}
		}
	}
}
