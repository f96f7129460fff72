package webhook_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/knit-cdp/knit/resolver"
	"github.com/knit-cdp/knit/webhook"
)

// The cases of TestMalformedRequests, by kind. Message ids are unique
// across cases, as all of them go to one database.

func malformedCases(t *testing.T) []malformed {
	var cases []malformed
	for _, group := range [][]malformed{
		syntaxCases(), nestingCases(), typeCases(), numberCases(), timeCases(),
		textCases(), sizeCases(t), transportCases(t), batchCases(),
	} {
		cases = append(cases, group...)
	}
	return cases
}

// trackWith is a valid track call with messageId id and more fields, each
// starting with a comma.
func trackWith(id, fields string) string {
	return `{"type":"track","userId":"u-` + id + `","event":"E","messageId":"` + id + `"` +
		fields + `}`
}

// identifyWith is a valid identify call with messageId id and more fields.
func identifyWith(id, fields string) string {
	return `{"type":"identify","userId":"u-` + id + `","messageId":"` + id + `"` +
		fields + `}`
}

// nestedMessage is a track call nested depth levels deep (its own braces
// the first), by arrays in its properties.
func nestedMessage(id string, depth int) string {
	arrays := depth - 2
	return trackWith(id, `,"properties":{"a":`+strings.Repeat("[", arrays)+
		strings.Repeat("]", arrays)+`}`)
}

// in wraps messages in a tracking API batch body.
func in(items ...string) []byte { return batchBody(items...) }

const (
	bad   = http.StatusBadRequest
	isBad = resolver.EInvalid
)

func syntaxCases() []malformed {
	truncated := `{"type":"track","userId":"u-cut","eve`
	return []malformed{
		{name: "truncated JSON on /webhook", path: "/webhook", body: []byte(truncated),
			status: bad, code: isBad, part: "message is not valid JSON: unexpected EOF"},
		{name: "truncated JSON on /v1/track", path: "/v1/track", body: []byte(truncated),
			status: bad, code: isBad, part: "body is not valid JSON: unexpected EOF"},
		{name: "truncated batch on /v1/batch", path: "/v1/batch",
			body:   []byte(`{"batch":[` + truncated),
			status: bad, code: isBad, part: "body is not valid JSON: unexpected EOF"},
		{name: "truncated array on /webhook", path: "/webhook",
			body:   []byte(`[` + track("cut-array")),
			status: bad, code: isBad, part: "body is not a valid JSON array of messages"},
		{name: "data after the message on /webhook", path: "/webhook",
			body:   []byte(track("trailing") + ` {}`),
			status: bad, code: isBad, part: "message has data after its JSON object"},
		{name: "a stray bracket after the message on /webhook", path: "/webhook",
			body:   []byte(track("stray") + "\n}"),
			status: bad, code: isBad, part: "message has data after its JSON object"},
		{name: "data after the body on /v1/track", path: "/v1/track",
			body:   []byte(track("trailing-v1") + `]`),
			status: bad, code: isBad, part: "body has data after its JSON object"},
		{name: "null body on /webhook", path: "/webhook", body: []byte(`null`),
			status: bad, code: isBad, part: "message must be a JSON object"},
		{name: "null body on /v1/identify", path: "/v1/identify", body: []byte(`null`),
			status: bad, code: isBad, part: "body must be a JSON object, not null"},
		{name: "string body on /v1/track", path: "/v1/track", body: []byte(`"track"`),
			status: bad, code: isBad, part: "body must be an object, not string"},
		{name: "NaN literal on /webhook", path: "/webhook",
			body:   []byte(trackWith("nan", `,"properties":{"n":NaN}`)),
			status: bad, code: isBad, part: "invalid character 'N' looking for beginning"},
		{name: "Infinity literal on /v1/track", path: "/v1/track",
			body:   []byte(trackWith("inf", `,"properties":{"n":-Infinity}`)),
			status: bad, code: isBad, part: "invalid character 'I' in numeric literal"},
		{name: "single-quoted JSON on /v1/batch", path: "/v1/batch",
			body:   []byte(`{'batch':[]}`),
			status: bad, code: isBad, part: "invalid character '\\'' looking for"},
		{name: "empty body on /webhook", path: "/webhook", body: nil,
			status: bad, code: isBad, part: "request body is empty"},
		{name: "white space body on /v1/batch", path: "/v1/batch", body: []byte(" \n\t "),
			status: bad, code: isBad, part: "request body is empty"},
	}
}

func nestingCases() []malformed {
	deep := fmt.Sprintf("more than %d levels deep", resolver.MaxDepth)
	arrays := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	return []malformed{
		{name: "10,000 nested arrays as the /webhook body", path: "/webhook",
			body: []byte(arrays), status: bad, code: isBad, part: deep},
		{name: "message nested 10,000 levels on /webhook", path: "/webhook",
			body:   []byte(nestedMessage("deep-10k", 10000)),
			status: bad, code: isBad, part: deep},
		{name: "message nested 10,000 levels on /v1/track", path: "/v1/track",
			body:   []byte(nestedMessage("deep-10k-v1", 10000)),
			status: bad, code: isBad, part: deep},
		{name: "batch nested 10,000 levels on /v1/batch", path: "/v1/batch",
			body:   in(nestedMessage("deep-10k-batch", 9998)),
			status: bad, code: isBad, part: deep},
		{name: "batch nested 10,001 levels on /v1/batch is not decoded", path: "/v1/batch",
			body:   in(nestedMessage("deep-10001", 9999)),
			status: bad, code: isBad, part: "exceeded max depth"},
		{name: "message nested 101 levels on /v1/track", path: "/v1/track",
			body:   []byte(nestedMessage("deep-101", resolver.MaxDepth+1)),
			status: bad, code: isBad, part: deep},
		{name: "message nested 100 levels is stored", path: "/webhook",
			body:   []byte(nestedMessage("deep-100", resolver.MaxDepth)),
			status: http.StatusOK, stored: []string{"deep-100"}},
		{name: "brackets inside strings are not nesting", path: "/v1/track",
			body: []byte(trackWith("brackets",
				`,"properties":{"s":"`+strings.Repeat(`[{\"`, 200)+`"}`)),
			status: http.StatusOK, stored: []string{"brackets"}},
	}
}

func typeCases() []malformed {
	return []malformed{
		{name: "traits as a string on /webhook", path: "/webhook",
			body:   []byte(identifyWith("traits-str", `,"traits":"vip"`)),
			status: bad, code: isBad, part: "traits must be an object"},
		{name: "traits as an array on /v1/identify", path: "/v1/identify",
			body:   []byte(identifyWith("traits-arr", `,"traits":["vip"]`)),
			status: bad, code: isBad, part: "traits must be an object"},
		{name: "userId as an object on /webhook", path: "/webhook",
			body:   []byte(`{"type":"track","userId":{"id":1},"event":"E"}`),
			status: bad, code: isBad, part: "userId must be a string"},
		{name: "userId as an array on /v1/track", path: "/v1/track",
			body:   []byte(`{"type":"track","userId":["u"],"event":"E"}`),
			status: bad, code: isBad, part: "userId must be a string"},
		{name: "userId as a number is stored as its text", path: "/webhook",
			body: []byte(`{"type":"track","userId":4217,"event":"E",` +
				`"messageId":"uid-number"}`),
			status: http.StatusOK, stored: []string{"uid-number"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "user_id", "uid-number", "4217")
				mustIdentities(t, s, "uid-number", "user_id:4217")
			}},
		{name: "userId true is stored but is no identifier", path: "/v1/track",
			body:   []byte(`{"userId":true,"event":"E","messageId":"uid-bool"}`),
			status: http.StatusOK, stored: []string{"uid-bool"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "user_id", "uid-bool", "true")
				mustIdentities(t, s, "uid-bool")
			}},
		{name: "anonymousId as an object in a batch", path: "/v1/batch",
			body:   in(`{"type":"page","anonymousId":{},"name":"Home"}`),
			status: bad, code: isBad, part: "anonymousId must be a string"},
		{name: "messageId as an array", path: "/webhook",
			body:   []byte(`{"type":"track","userId":"u","event":"E","messageId":["m"]}`),
			status: bad, code: isBad, part: "messageId must be a string"},
		{name: "event as an object", path: "/v1/track",
			body:   []byte(`{"userId":"u","event":{"name":"E"}}`),
			status: bad, code: isBad, part: "event must be a string"},
		{name: "type as a number", path: "/webhook",
			body:   []byte(`{"type":5,"userId":"u","event":"E"}`),
			status: bad, code: isBad, part: `type "5" is not one of identify, track`},
		{name: "properties as a string", path: "/v1/track",
			body:   []byte(trackWith("props-str", `,"properties":"{}"`)),
			status: bad, code: isBad, part: "properties must be an object"},
		{name: "context as an array", path: "/webhook",
			body:   []byte(trackWith("ctx-arr", `,"context":[]`)),
			status: bad, code: isBad, part: "context must be an object"},
		{name: "batch as an object", path: "/v1/batch", body: []byte(`{"batch":{}}`),
			status: bad, code: isBad, part: "batch must be an array, not object"},
		{name: "batch context as a string", path: "/v1/import",
			body:   []byte(`{"batch":[` + track("bctx") + `],"context":"web"}`),
			status: bad, code: isBad, part: "context must be an object, not string"},
		{name: "body writeKey as a number is no write key", path: "/v1/track",
			body: []byte(`{"userId":"u","event":"E","writeKey":12}`), noKey: true,
			status: http.StatusUnauthorized, code: resolver.EUnauthorized,
			part: "a write key is required"},
	}
}

func numberCases() []malformed {
	return []malformed{
		{name: "numbers beyond float64 in properties are kept as sent", path: "/webhook",
			body:   []byte(trackWith("num-1e400", `,"properties":{"n":1e400,"m":-1e400}`)),
			status: http.StatusOK, stored: []string{"num-1e400"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "properties", "num-1e400", `{"m":-1e400,"n":1e400}`)
			}},
		{name: "numbers beyond float64 in traits are kept as sent", path: "/v1/identify",
			body: []byte(identifyWith("trait-1e400",
				`,"traits":{"score":1e400,"digits":`+strings.Repeat("9", 400)+`}`)),
			status: http.StatusOK, stored: []string{"trait-1e400"},
			check: func(t *testing.T, s *server) {
				mustTraits(t, s, "trait-1e400", map[string]string{
					"score": "1e400", "digits": strings.Repeat("9", 400)})
			}},
		{name: "a number wider than PostgreSQL's numeric is refused, the rest stored",
			path: "/v1/batch",
			body: in(track("wide-ok"), `{"type":"track","userId":"u","event":"E",`+
				`"messageId":"wide-1e1000000","properties":{"n":1e1000000}}`),
			status: http.StatusOK, code: isBad, part: "properties.n holds the number 1e1000000",
			stored: []string{"wide-ok"}, refused: []int{1}},
		{name: "a single message with a number too wide for traits", path: "/v1/identify",
			body:   []byte(identifyWith("wide-trait", `,"traits":{"score":1e-20000}`)),
			status: bad, code: isBad, part: "traits.score holds the number 1e-20000"},
		{name: "a userId of 1e400 is its text", path: "/v1/batch",
			body:   in(`{"type":"track","userId":1e400,"event":"E","messageId":"uid-1e400"}`),
			status: http.StatusOK, stored: []string{"uid-1e400"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "user_id", "uid-1e400", "1e400")
			}},
		{name: "a negative distance is the user's data and is stored", path: "/v1/track",
			body: []byte(`{"userId":"u-run","event":"Workout Completed",` +
				`"messageId":"neg-distance","properties":{"distance":-5.5}}`),
			status: http.StatusOK, stored: []string{"neg-distance"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "properties", "neg-distance", `{"distance":-5.5}`)
			}},
		{name: "NaN as a string distance is stored as a string", path: "/webhook",
			body: []byte(`{"type":"track","userId":"u-run","event":"Workout Completed",` +
				`"messageId":"nan-distance","properties":{"distance":"NaN"}}`),
			status: http.StatusOK, stored: []string{"nan-distance"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "properties", "nan-distance", `{"distance":"NaN"}`)
			}},
	}
}

func timeCases() []malformed {
	outOfRange := "knit keeps times from year 0000 to 9999"
	stamped := func(id, ts string) []byte {
		return []byte(trackWith(id, `,"timestamp":"`+ts+`"`))
	}
	return []malformed{
		{name: "timestamp as a number on /webhook", path: "/webhook",
			body:   []byte(trackWith("ts-num", `,"timestamp":1773489600000`)),
			status: bad, code: isBad, part: "timestamp must be an ISO-8601 date string"},
		{name: "timestamp as a number on /v1/track", path: "/v1/track",
			body:   []byte(trackWith("ts-num-v1", `,"timestamp":1773489600`)),
			status: bad, code: isBad, part: "timestamp must be an ISO-8601 date string"},
		{name: "an empty timestamp", path: "/webhook", body: stamped("ts-empty", ""),
			status: bad, code: isBad, part: "timestamp must be an ISO-8601 date string"},
		{name: "year 0000 is stored as sent", path: "/webhook",
			body:   stamped("year-0", "0000-01-01T00:00:00Z"),
			status: http.StatusOK, stored: []string{"year-0"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "ts_ms", "year-0", "-62167219200000")
			}},
		{name: "year 9999 is stored as sent", path: "/webhook",
			body:   stamped("year-9999", "9999-12-31T23:59:59.999Z"),
			status: http.StatusOK, stored: []string{"year-9999"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "ts_ms", "year-9999", "253402300799999")
			}},
		{name: "year 0000 with a true sentAt stays year 0000", path: "/v1/track",
			body: []byte(trackWith("year-0-v1", `,"timestamp":"0000-01-01T00:00:00Z",`+
				`"sentAt":"2026-03-14T12:00:00Z"`)),
			status: http.StatusOK, stored: []string{"year-0-v1"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "ts_ms", "year-0-v1", "-62167219200000")
			}},
		{name: "year 0000 in UTC+1 is before year 0000", path: "/webhook",
			body:   stamped("year-minus-1", "0000-01-01T00:30:00+01:00"),
			status: bad, code: isBad, part: "year -1 in UTC"},
		{name: "year 9999 in UTC-1 is after year 9999", path: "/v1/track",
			body:   stamped("year-10000", "9999-12-31T23:30:00-01:00"),
			status: bad, code: isBad, part: "year 10000 in UTC"},
		{name: "a sentAt in year 9999 corrects to before year 0000", path: "/v1/batch",
			body: []byte(`{"sentAt":"9999-12-31T00:00:00Z","batch":[` +
				trackWith("skew-9999", `,"timestamp":"2026-03-14T12:00:00Z"`) + `]}`),
			status: bad, code: isBad, part: outOfRange},
		{name: "February 30", path: "/webhook", body: stamped("feb-30", "2026-02-30"),
			status: bad, code: isBad, part: `timestamp "2026-02-30" is not an ISO-8601 date`},
		{name: "month 13", path: "/v1/track",
			body:   stamped("month-13", "2026-13-01T00:00:00Z"),
			status: bad, code: isBad, part: `"2026-13-01T00:00:00Z" is not an ISO-8601 date`},
		{name: "year 10000 written out", path: "/webhook",
			body:   stamped("year-5-digits", "10000-01-01T00:00:00Z"),
			status: bad, code: isBad, part: `"10000-01-01T00:00:00Z" is not an ISO-8601`},
		{name: "a batch sentAt that is no date", path: "/v1/batch",
			body: []byte(`{"sentAt":"yesterday","batch":[` +
				trackWith("sent-bad", `,"timestamp":"2026-03-14T11:00:00Z"`) + `]}`),
			status: bad, code: isBad, part: `sentAt "yesterday" is not an ISO-8601 date`},
	}
}

// mustColumn checks one column of the stored event of messageID.
func mustColumn(t *testing.T, s *server, column, messageID, want string) {
	t.Helper()
	if got := mustStoredColumn(t, s, column, messageID); got != want {
		t.Errorf("%s of %q = %q, want %q", column, messageID, got, want)
	}
}

// mustIdentities checks the identifiers first seen on messageID.
func mustIdentities(t *testing.T, s *server, messageID string, want ...string) {
	t.Helper()
	got := mustIdentitiesOf(t, s, messageID)
	if !slices.Equal(got, append([]string{}, want...)) {
		t.Errorf("identities of %q = %q, want %q", messageID, got, want)
	}
}

// mustTraits checks the traits set by messageID, each value decoded from
// its stored JSON and compared as JSON text.
func mustTraits(t *testing.T, s *server, messageID string, want map[string]string) {
	t.Helper()
	got := mustTraitsOf(t, s, messageID)
	if len(got) != len(want) {
		t.Errorf("traits of %q = %q, want %q", messageID, got, want)
	}
	for key, value := range want {
		var stored, wanted any
		errStored := json.Unmarshal([]byte(got[key]), &stored)
		errWanted := json.Unmarshal([]byte(value), &wanted)
		if got[key] != value && (errStored != nil || errWanted != nil ||
			fmt.Sprint(stored) != fmt.Sprint(wanted)) {
			t.Errorf("trait %q of %q = %q, want %q", key, messageID, got[key], value)
		}
	}
}

func textCases() []malformed {
	notUTF8 := "message is not valid UTF-8: byte 0x"
	return []malformed{
		{name: "bytes that are not UTF-8 in a userId on /webhook", path: "/webhook",
			body:   []byte("{\"type\":\"track\",\"userId\":\"u\xff\xfe\",\"event\":\"E\"}"),
			status: bad, code: isBad, part: notUTF8 + "ff at offset 27"},
		{name: "bytes that are not UTF-8 on /v1/track", path: "/v1/track",
			body:   []byte("{\"type\":\"track\",\"userId\":\"u\",\"event\":\"caf\xe9\"}"),
			status: bad, code: isBad, part: notUTF8 + "e9"},
		{name: "bytes that are not UTF-8 on /v1/identify without a type",
			path: "/v1/identify", body: []byte("{\"userId\":\"u\",\"traits\":{\"n\xc3\":1}}"),
			status: bad, code: isBad, part: notUTF8 + "c3"},
		{name: "a lone surrogate is replaced and makes no identifier", path: "/webhook",
			body: []byte(`{"type":"identify","userId":"u-\ud800","anonymousId":"a-sur",` +
				`"messageId":"lone-surrogate","traits":{"name":"\udc00x"}}`),
			status: http.StatusOK, stored: []string{"lone-surrogate"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "user_id", "lone-surrogate", "u-\uFFFD")
				mustIdentities(t, s, "lone-surrogate", "anonymous_id:a-sur")
				mustTraits(t, s, "lone-surrogate", map[string]string{
					"name": `"\uFFFDx"`})
			}},
		{name: "NUL in ids and traits is replaced and makes no identifier",
			path: "/v1/identify",
			body: []byte(`{"userId":"u\u0000x","anonymousId":"a-nul",` +
				`"messageId":"nul\u0000id","traits":{"k\u0000":"v\u0000"}}`),
			status: http.StatusOK, stored: []string{"nul\uFFFDid"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "user_id", "nul\uFFFDid", "u\uFFFDx")
				mustIdentities(t, s, "nul\uFFFDid", "anonymous_id:a-nul")
				mustTraits(t, s, "nul\uFFFDid", map[string]string{
					"k\uFFFD": `"v\uFFFD"`})
			}},
		{name: "a raw NUL byte in a string is not JSON", path: "/webhook",
			body:   []byte("{\"type\":\"track\",\"userId\":\"u\x00\",\"event\":\"E\"}"),
			status: bad, code: isBad, part: `invalid character '\x00' in string literal`},
		{name: "a repeated key: the last one wins, the raw message keeps both",
			path: "/webhook",
			body: []byte(`{"type":"track","userId":"u-first","userId":"u-last",` +
				`"event":"E","messageId":"dup-keys"}`),
			status: http.StatusOK, stored: []string{"dup-keys"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "user_id", "dup-keys", "u-last")
				if raw := mustStoredColumn(t, s, "raw", "dup-keys"); !strings.Contains(
					raw, `"userId":"u-first","userId":"u-last"`) {
					t.Errorf("raw %s is not the message as sent", raw)
				}
			}},
		{name: "a repeated type: the last one decides", path: "/v1/batch",
			body: in(`{"type":"identify","type":"track","userId":"u","event":"E",` +
				`"messageId":"dup-type"}`),
			status: http.StatusOK, stored: []string{"dup-type"},
			check: func(t *testing.T, s *server) {
				mustColumn(t, s, "type", "dup-type", "track")
			}},
		{name: "a repeated batch key: the last (empty) one wins", path: "/v1/batch",
			body:   []byte(`{"batch":[` + track("dup-batch") + `],"batch":[]}`),
			status: bad, code: isBad, part: "batch is empty"},
	}
}

func sizeCases(t *testing.T) []malformed {
	megabyte := strings.Repeat("x", 1<<20)
	overRequest := "over 512000 bytes (500 KB) after decompression"
	overMessage := fmt.Sprintf("the limit is %d (32 KB)", resolver.MaxMessageBytes)
	return []malformed{
		{name: "a 1 MB string on /webhook", path: "/webhook",
			body:   []byte(trackWith("mb", `,"properties":{"s":"`+megabyte+`"}`)),
			status: bad, code: resolver.ETooLarge, part: overRequest},
		{name: "a 1 MB string on /v1/track", path: "/v1/track",
			body:   []byte(trackWith("mb-v1", `,"properties":{"s":"`+megabyte+`"}`)),
			status: bad, code: resolver.ETooLarge, part: overRequest},
		{name: "a 1 MB string in a batch", path: "/v1/batch",
			body:   in(track("mb-ok"), trackWith("mb-batch", `,"name":"`+megabyte+`"`)),
			status: bad, code: resolver.ETooLarge, part: overRequest},
		{name: "a 400 KB string is under 500 KB but over 32 KB a message",
			path: "/webhook", body: []byte(mustPadded(t, "kb-400", 400*1024)),
			status: bad, code: resolver.ETooLarge, part: overMessage},
		{name: "a message one byte under 32 KB is stored", path: "/v1/track",
			body:   []byte(mustPadded(t, "kb-32", resolver.MaxMessageBytes-1)),
			status: http.StatusOK, stored: []string{"kb-32"}},
		{name: "a 1 MB identifier in a trait", path: "/v1/identify",
			body:   []byte(identifyWith("mb-trait", `,"traits":{"email":"`+megabyte+`"}`)),
			status: bad, code: resolver.ETooLarge, part: overRequest},
	}
}

func transportCases(t *testing.T) []malformed {
	gz := map[string]string{"Content-Encoding": "gzip"}
	notGzip := append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, "garbage!"...)
	return []malformed{
		{name: "Content-Type text/html", path: "/webhook",
			body: []byte(track("html")), header: map[string]string{"Content-Type": "text/html"},
			status: http.StatusUnsupportedMediaType, code: resolver.EUnsupported,
			part: `Content-Type "text/html" is not supported`},
		{name: "Content-Type multipart", path: "/v1/batch", body: in(track("multipart")),
			header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"},
			status: http.StatusUnsupportedMediaType, code: resolver.EUnsupported,
			part: `Content-Type "multipart/form-data" is not supported`},
		{name: "Content-Type form on /v1/track", path: "/v1/track",
			body: []byte(track("form")),
			header: map[string]string{
				"Content-Type": "application/x-www-form-urlencoded"},
			status: http.StatusUnsupportedMediaType, code: resolver.EUnsupported,
			part: "send application/json"},
		{name: "a missing Content-Type is read as JSON", path: "/v1/track",
			body: []byte(track("no-type")), header: map[string]string{"Content-Type": ""},
			status: http.StatusOK, stored: []string{"no-type"}},
		{name: "Content-Encoding gzip on a plain body", path: "/webhook",
			body: []byte(track("plain-gz")), header: gz,
			status: bad, code: isBad, part: "body says Content-Encoding gzip but is not gzip"},
		{name: "a gzip header over data that is not deflate", path: "/v1/batch",
			body: notGzip, header: gz,
			status: bad, code: isBad, part: "request body is truncated or corrupt"},
		{name: "a gzip body without Content-Encoding", path: "/v1/track",
			body:   mustGzip(t, []byte(track("gz-unsaid"))),
			status: bad, code: isBad, part: "send it with Content-Encoding: gzip"},
		{name: "Content-Encoding br", path: "/webhook", body: []byte(track("br")),
			header: map[string]string{"Content-Encoding": "br"},
			status: http.StatusUnsupportedMediaType, code: resolver.EUnsupported,
			part: `Content-Encoding "br" is not supported`},
	}
}

func batchCases() []malformed {
	tooMany := fmt.Sprintf("batch has %d messages; the limit is %d",
		webhook.MaxBatchMessages+1, webhook.MaxBatchMessages)
	return []malformed{
		{name: "an empty array on /webhook", path: "/webhook", body: []byte(`[]`),
			status: bad, code: isBad, part: "batch is empty"},
		{name: "an empty batch on /v1/batch", path: "/v1/batch", body: in(),
			status: bad, code: isBad, part: "batch is empty"},
		{name: "a null batch on /v1/import", path: "/v1/import",
			body: []byte(`{"batch":null}`), status: bad, code: isBad, part: "batch is empty"},
		{name: "a tracking batch sent to /webhook", path: "/webhook", body: in(),
			status: bad, code: isBad, part: "send {\"batch\": [...]} bodies to /v1/batch"},
		{name: "an array of arrays on /webhook", path: "/webhook", body: []byte(`[[]]`),
			status: bad, code: isBad, part: "message must be a JSON object"},
		{name: "2,501 messages on /webhook", path: "/webhook",
			body:   array(manyTracks(webhook.MaxBatchMessages + 1)...),
			status: bad, code: resolver.ETooLarge, part: tooMany},
		{name: "2,501 messages on /v1/batch", path: "/v1/batch",
			body:   in(manyTracks(webhook.MaxBatchMessages + 1)...),
			status: bad, code: resolver.ETooLarge, part: tooMany},
		{name: "one bad message in a /webhook array: the rest is stored",
			path: "/webhook",
			body: array(track("mix-a"), `{"type":"track","userId":{},"event":"E"}`,
				track("mix-b")),
			status: http.StatusOK, code: isBad, part: "userId must be a string",
			stored: []string{"mix-a", "mix-b"}, refused: []int{1}},
		{name: "one message that is not UTF-8 in a batch with context", path: "/v1/batch",
			body: []byte(`{"context":{"ip":"1.2.3.4"},"batch":[` + track("mix-c") +
				",{\"type\":\"track\",\"userId\":\"u\xff\",\"event\":\"E\"}]}"),
			status: http.StatusOK, code: isBad, part: "message is not valid UTF-8",
			stored: []string{"mix-c"}, refused: []int{1}},
		{name: "one message nested too deep in a batch", path: "/v1/batch",
			body:   in(nestedMessage("mix-deep", 500), track("mix-d")),
			status: http.StatusOK, code: isBad, part: "levels deep",
			stored: []string{"mix-d"}, refused: []int{0}},
		{name: "a batch with no valid message is refused, each listed", path: "/webhook",
			body: array(`{"type":"track","userId":[],"event":"E"}`,
				`{"type":"track","userId":{},"event":"E"}`),
			status: bad, code: isBad, part: "none of the 2 messages is valid; see rejected",
			itemPart: "userId must be a string", refused: []int{0, 1}},
	}
}
