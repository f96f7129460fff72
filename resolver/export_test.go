package resolver

// The group committer's test helpers, for the external tests.
var (
	HoldWriteLock          = holdWriteLock
	PoisonEvents           = poisonEvents
	WaitForCallersInIngest = waitForCallersInIngest
)

// WaitForReadAheads makes g wait, each time it starts reading ahead for
// the next group, until that read is done: the read then shows the
// database as it was before the group under way wrote anything, the case
// where what that group touches must be left out. Call it before the
// first Ingest.
func WaitForReadAheads(g *GroupCommitter) {
	g.readAheadStarted = func(ahead *readAhead) { <-ahead.done }
}

// ReadAheadOnEveryEngine makes g read the next group ahead on SQLite too,
// where it does not by default. Call it before the first Ingest.
func ReadAheadOnEveryEngine(g *GroupCommitter) {
	g.readAhead = true
}
