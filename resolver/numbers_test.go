package resolver_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/resolver/sqldb/sqltest"
)

// numberSamples are numbers at and around the widest PostgreSQL's numeric
// holds, with whether knit keeps them.
var numberSamples = []struct {
	number string
	fits   bool
}{
	{"1e400", true},
	{"-1e400", true},
	{"1e-400", true},
	{strings.Repeat("9", 400), true},
	{"1e131071", true},
	{"9.9e131071", true},
	{"0.0001e131075", true},
	{"1e131072", false},
	{"-1E+131072", false},
	{"10e131071", false},
	{"1e1000000", false},
	{"1e-16383", true},
	{"1e-16384", false},
	{"1.5e-16383", false},
	{"0.5e-16382", true},
	{"0e1000000", true},
	{"0e-16382", true},
	{"0." + strings.Repeat("0", 16383), true},
	{"0." + strings.Repeat("0", 16384), false},
	{"1e99999999999999999999", false},
}

// TestParseMessageRefusesNumbersTooWideToStore checks that a message
// holding a number wider than PostgreSQL's numeric, in its properties or
// traits, is refused with a message naming where, and that wide numbers
// within it are kept.
func TestParseMessageRefusesNumbersTooWideToStore(t *testing.T) {
	env := resolver.Envelope{Source: "test", ReceivedAt: time.Now()}
	for _, sample := range numberSamples {
		for _, where := range []struct{ field, path string }{
			{`"properties":{"a":1,"list":[0,{"x":%s}]}`, "properties.list[1].x"},
			{`"traits":{"score":%s}`, "traits.score"},
		} {
			body := `{"type":"identify","userId":"u","messageId":"m",` +
				strings.Replace(where.field, "%s", sample.number, 1) + `}`
			_, err := resolver.ParseMessage([]byte(body), env)
			if sample.fits {
				if err != nil {
					t.Errorf("%s in %s refused: %v", sample.number, where.path, err)
				}
				continue
			}
			if resolver.ErrorCode(err) != resolver.EInvalid ||
				!strings.Contains(err.Error(), where.path+" holds the number") {
				t.Errorf("%s in %s: got %v, want an invalid message naming %s",
					excerptOf(sample.number), where.path, err, where.path)
			}
		}
	}
}

// TestNumbersKeptAreNumbersPostgreSQLHolds checks the limits against the
// server: each sample knit keeps reads as jsonb, and each it refuses does
// not.
func TestNumbersKeptAreNumbersPostgreSQLHolds(t *testing.T) {
	if os.Getenv(sqltest.PostgresEnv) == "" {
		t.Skip("needs PostgreSQL: set " + sqltest.PostgresEnv)
	}
	db := sqltest.MustOpenPostgres(t)
	for _, sample := range numberSamples {
		var length int
		err := db.Get(&length, `SELECT length(CAST($1 AS jsonb)::text)`,
			`{"x":`+sample.number+`}`)
		if (err == nil) != sample.fits {
			t.Errorf("%s: PostgreSQL's error %v, knit keeps it: %v",
				excerptOf(sample.number), err, sample.fits)
		}
	}
}

func excerptOf(number string) string {
	if len(number) > 30 {
		return number[:30] + "..."
	}
	return number
}

// Guard against the samples drifting from valid JSON numbers.
func TestNumberSamplesAreJSON(t *testing.T) {
	for _, sample := range numberSamples {
		var n json.Number
		if err := json.Unmarshal([]byte(sample.number), &n); err != nil {
			t.Errorf("%s: %v", excerptOf(sample.number), err)
		}
	}
}
