package main

import (
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"
)

// Encoding the simulated traffic as Segment messages. Messages are
// appended to byte slices field by field, never through encoding/json and
// maps, so that building a request costs microseconds and the load
// generator is not what limits a benchmark.

// appendMessage appends step st of person p as one Segment message in
// JSON, with messageId id.
func appendMessage(dst []byte, p *benchPerson, st *benchStep, id []byte) []byte {
	d := &p.devices[st.device]
	web := d.platform == platformWeb && st.app == appKicks
	switch {
	case st.kind == stepIdentify:
		dst = append(dst, `{"type":"identify"`...)
	case st.kind == stepAppOpened && web:
		dst = append(dst, `{"type":"page"`...)
	default:
		dst = append(dst, `{"type":"track"`...)
	}
	dst = append(dst, `,"messageId":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","timestamp":"`...)
	dst = st.at.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	dst = append(dst, '"')
	anon := d.anon
	if st.app == appRuns {
		anon = d.runAnon
	}
	dst = appendField(dst, "anonymousId", anon)
	if st.signedIn {
		dst = appendField(dst, "userId", p.userID)
	}
	dst = appendBody(dst, p, st, web, id)
	dst = appendContext(dst, d, st.app)
	return append(dst, '}')
}

// appendField appends ,"key":"value" with value escaped for JSON.
func appendField(dst []byte, key, value string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return appendJSONString(dst, value)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		case r < utf8.RuneSelf:
			dst = append(dst, byte(r))
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}

// appendBody appends what the message says: traits, or the event (or page
// name) and its properties.
func appendBody(dst []byte, p *benchPerson, st *benchStep, web bool, id []byte) []byte {
	switch st.kind {
	case stepIdentify:
		dst = append(dst, `,"traits":{"email":`...)
		dst = appendJSONString(dst, p.email)
		dst = appendField(dst, "first_name", p.firstName)
		return append(dst, `,"plan":"free"}`...)
	case stepAppOpened:
		if web {
			return append(dst, `,"name":"Home","properties":{"path":"/",`+
				`"url":"https://segkicks.example/"}`...)
		}
		return append(dst, `,"event":"App Opened","properties":{}`...)
	case stepViewed, stepAdded, stepRemoved:
		return appendProductEvent(dst, p, st)
	case stepOrder:
		return appendOrder(dst, st, id)
	default:
		return appendWorkout(dst, p, st)
	}
}

func appendProductEvent(dst []byte, p *benchPerson, st *benchStep) []byte {
	switch st.kind {
	case stepViewed:
		dst = append(dst, `,"event":"Product Viewed","properties":{`...)
	case stepAdded:
		dst = append(dst, `,"event":"Product Added","properties":{`...)
	default:
		dst = append(dst, `,"event":"Product Removed","properties":{`...)
	}
	dst = appendProduct(dst, &benchCatalogue[st.product])
	if st.kind == stepAdded {
		dst = append(dst, `,"quantity":1,"cart_id":"cart_`...)
		dst = append(dst, p.userID[len("usr_"):]...)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendProduct appends a product's fields, without braces.
func appendProduct(dst []byte, product *benchProduct) []byte {
	dst = append(dst, `"product_id":`...)
	dst = appendJSONString(dst, product.id)
	dst = appendField(dst, "name", product.name)
	dst = appendField(dst, "category", product.category)
	dst = append(dst, `,"price":`...)
	return strconv.AppendFloat(dst, product.price, 'f', -1, 64)
}

func appendOrder(dst []byte, st *benchStep, id []byte) []byte {
	total := benchCatalogue[st.product].price
	if st.product2 >= 0 {
		total += benchCatalogue[st.product2].price
	}
	dst = append(dst, `,"event":"Order Completed","properties":{"order_id":"o_`...)
	dst = append(dst, id...)
	dst = append(dst, `","currency":"USD","total":`...)
	dst = strconv.AppendFloat(dst, total, 'f', -1, 64)
	dst = append(dst, `,"products":[{`...)
	dst = appendProduct(dst, &benchCatalogue[st.product])
	if st.product2 >= 0 {
		dst = append(dst, `,"quantity":1},{`...)
		dst = appendProduct(dst, &benchCatalogue[st.product2])
	}
	return append(dst, `,"quantity":1}]}`...)
}

func appendWorkout(dst []byte, p *benchPerson, st *benchStep) []byte {
	dst = append(dst, `,"event":"Workout Completed","properties":{"distance":`...)
	dst = strconv.AppendFloat(dst, st.distance, 'f', 2, 64)
	dst = append(dst, `,"duration_s":`...)
	dst = strconv.AppendInt(dst, int64(st.seconds), 10)
	if p.km {
		dst = append(dst, `,"distance_unit":"km"`...)
	}
	return append(dst, '}')
}

// appendContext appends the context a Segment library of the device's
// platform sends, naming the app.
func appendContext(dst []byte, d *benchDevice, app benchApp) []byte {
	appName := `"app":{"name":"SegKicks","version":"4.2.0","build":"420"}`
	if app == appRuns {
		appName = `"app":{"name":"SegRuns","version":"2.8.1","build":"281"}`
	}
	switch d.platform {
	case platformWeb:
		return append(dst, `,"context":{"library":{"name":"analytics.js",`+
			`"version":"5.2.0"},"app":{"name":"SegKicks Web","version":"4.2.0",`+
			`"build":"420"},"page":{"path":"/","url":"https://segkicks.example/"},`+
			`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}`...)
	case platformIOS:
		dst = append(dst, `,"context":{"library":{"name":"analytics-ios",`+
			`"version":"4.1.8"},`...)
		dst = append(dst, appName...)
		dst = append(dst, `,"device":{"type":"ios","manufacturer":"Apple",`+
			`"model":"iPhone15,2","id":"`...)
		dst = append(dst, d.id...)
		return append(dst, `"},"os":{"name":"iOS","version":"18.1"}}`...)
	default:
		dst = append(dst, `,"context":{"library":{"name":"analytics-android",`+
			`"version":"4.11.3"},`...)
		dst = append(dst, appName...)
		dst = append(dst, `,"device":{"type":"android","manufacturer":"Google",`+
			`"model":"Pixel 8","id":"`...)
		dst = append(dst, d.id...)
		return append(dst, `"},"os":{"name":"Android","version":"15"}}`...)
	}
}

// benchStream is one connection's endless stream of messages: visits of
// people drawn at random from the population, at times spread over the
// span before end, or, when span is 0, stamped as they are sent, as live
// traffic is. The same seed and worker give the same messages; the
// run id in every messageId keeps runs from colliding, and the rest of it
// is the message's number scrambled, as random as a library's UUID.
type benchStream struct {
	seed     uint64
	people   int
	rng      *rand.Rand
	idPrefix []byte // bench-SEED-RUN-WORKER-
	seq      uint64
	end      time.Time
	span     time.Duration
	person   benchPerson
	steps    []benchStep
	pos      int
	id       []byte // scratch for the messageId
}

func newBenchStream(seed uint64, people int, runID string, worker int, end time.Time,
	span time.Duration) *benchStream {
	prefix := []byte("bench-")
	prefix = strconv.AppendUint(prefix, seed, 10)
	prefix = append(append(append(prefix, '-'), runID...), '-')
	prefix = append(strconv.AppendInt(prefix, int64(worker), 10), '-')
	return &benchStream{seed: seed, people: people, idPrefix: prefix,
		rng: rand.New(rand.NewPCG(mix64(seed), uint64(worker)<<32|0xbe)),
		// A visit lasts at most a quarter of an hour; none ends after end.
		end: end.Add(-15 * time.Minute), span: span}
}

// liveLag is how long before it is sent a live message happened at most:
// a library's queue of a few seconds.
const liveLag = 5 * time.Second

// appendNext appends the next message of the stream to dst.
func (s *benchStream) appendNext(dst []byte) []byte {
	if s.pos >= len(s.steps) {
		s.person = newBenchPerson(s.seed, s.rng.IntN(s.people))
		at := s.end.Add(-time.Duration(s.rng.Int64N(int64(max(s.span, time.Minute)))))
		s.steps = s.person.visit(s.rng, s.steps[:0], at.Truncate(time.Millisecond))
		s.pos = 0
	}
	st := &s.steps[s.pos]
	s.pos++
	if s.span == 0 {
		lag := time.Duration(s.rng.Int64N(int64(liveLag)))
		st.at = time.Now().Add(-lag).Truncate(time.Millisecond)
	}
	// Segment's libraries send random messageIds (UUIDs), which land all
	// over the indexes that keep them; a counter would land at one end.
	s.id = strconv.AppendUint(append(s.id[:0], s.idPrefix...), mix64(s.seq), 16)
	s.seq++
	return appendMessage(dst, &s.person, st, s.id)
}

// appendBatch appends a tracking API batch body of n messages.
func (s *benchStream) appendBatch(dst []byte, n int) []byte {
	dst = append(dst, `{"batch":[`...)
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = s.appendNext(dst)
	}
	return append(dst, ']', '}')
}

// appendWebhook appends a /webhook body: one message, or for n > 1 a JSON
// array of n as Segment's Actions batching sends. It returns the body and
// the bytes Segment signs: the whole single message, or the array's first
// element.
func (s *benchStream) appendWebhook(dst []byte, n int) (body, signed []byte) {
	if n <= 1 {
		start := len(dst)
		dst = s.appendNext(dst)
		return dst, dst[start:]
	}
	dst = append(dst, '[')
	start := len(dst)
	dst = s.appendNext(dst)
	end := len(dst)
	for range n - 1 {
		dst = s.appendNext(append(dst, ','))
	}
	dst = append(dst, ']')
	return dst, dst[start:end]
}
