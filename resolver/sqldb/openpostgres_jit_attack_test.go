package sqldb_test

import "testing"

// A jit setting the URL chooses stays on every session: JIT=on (PostgreSQL
// names settings without regard to case) and options=-c jit=on, the form
// PGOPTIONS takes, as well as jit=on itself.
func TestOpenPostgresJITChosenInTheURLWins(t *testing.T) {
	server := opServer(t)
	for _, chosen := range []string{"JIT=on", "options=-c%20jit%3Don", "jit=on"} {
		db := opOpen(t, opWith(server, chosen))
		for i, got := range opShow(t, db, "jit", 8) {
			if got != "on" {
				t.Errorf("%s in the URL: connection %d has jit %q", chosen, i, got)
			}
		}
	}
}
