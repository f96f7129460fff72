package resolver

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// isoPattern accepts ISO-8601 as real Segment traffic writes it, including
// Segment's own documented example without zero padding (2015-2-02T00:30:08Z).
// A missing zone means UTC.
var isoPattern = regexp.MustCompile(`^(\d{1,4})-(\d{1,2})-(\d{1,2})` +
	`(?:[Tt ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:[.,](\d{1,9}))?)?)?` +
	`\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$`)

// ParseTime reads an ISO-8601 date or date-time leniently and returns it in
// UTC. It reports false for anything it cannot read.
func ParseTime(text string) (time.Time, bool) {
	parts := isoPattern.FindStringSubmatch(strings.TrimSpace(text))
	if parts == nil {
		return time.Time{}, false
	}

	num := func(i int) int {
		n, _ := strconv.Atoi(parts[i])
		return n
	}
	nanos := 0
	if frac := parts[7]; frac != "" {
		nanos, _ = strconv.Atoi((frac + "000000000")[:9])
	}
	zone, ok := parseZone(parts[8])
	if !ok {
		return time.Time{}, false
	}

	month, day, hour, minute, sec := num(2), num(3), num(4), num(5), num(6)
	if month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	t := time.Date(num(1), time.Month(month), day, hour, minute, sec, nanos, zone)
	if t.Day() != day {
		return time.Time{}, false // 31 April and friends
	}
	return t.UTC(), true
}

func parseZone(text string) (*time.Location, bool) {
	if text == "" || text == "Z" || text == "z" {
		return time.UTC, true
	}

	digits := strings.ReplaceAll(text[1:], ":", "")
	hours, err := strconv.Atoi(digits[:2])
	if err != nil || hours > 23 {
		return nil, false
	}
	minutes := 0
	if len(digits) == 4 {
		minutes, err = strconv.Atoi(digits[2:])
		if err != nil || minutes > 59 {
			return nil, false
		}
	} else if len(digits) != 2 {
		return nil, false
	}

	offset := hours*3600 + minutes*60
	if text[0] == '-' {
		offset = -offset
	}
	return time.FixedZone(text, offset), true
}

// messageTime decides the timestamp knit stores, which is what audiences
// evaluate. On the tracking API knit corrects the device clock as Segment
// does: received - (sentAt - client time). Elsewhere Segment already did,
// and the message's timestamp is final.
func messageTime(fields map[string]any, env Envelope) (time.Time, error) {
	client, clientKey, err := firstTime(fields, "timestamp", "originalTimestamp")
	if err != nil {
		return time.Time{}, err
	}

	if !env.CorrectSkew {
		if clientKey != "" {
			return client, nil
		}
		received, key, err := firstTime(fields, "receivedAt")
		if err != nil || key == "" {
			return env.ReceivedAt.UTC(), err
		}
		return received, nil
	}

	if clientKey == "" {
		return env.ReceivedAt.UTC(), nil
	}
	sentAt, sentKey, err := firstTime(fields, "sentAt")
	if err != nil {
		return time.Time{}, err
	}
	if sentKey == "" && env.BatchSentAt != "" {
		var ok bool
		if sentAt, ok = ParseTime(env.BatchSentAt); !ok {
			return time.Time{}, Errorf(EInvalid,
				"sentAt %q is not an ISO-8601 date", env.BatchSentAt)
		}
		sentKey = "sentAt"
	}
	if sentKey == "" {
		return client, nil
	}
	return skewCorrected(env.ReceivedAt, sentAt, client), nil
}

// skewCorrected returns received - (sentAt - client), exactly for any
// dates: a time.Duration holds only 292 years and saturates beyond, so
// for times further apart the sum is taken in milliseconds.
func skewCorrected(received, sentAt, client time.Time) time.Time {
	skew := sentAt.Sub(client)
	if client.Add(skew).Equal(sentAt) {
		return received.Add(-skew).UTC()
	}
	return time.UnixMilli(received.UnixMilli() - sentAt.UnixMilli() + client.UnixMilli()).UTC()
}

// checkTimeRange refuses a message time outside the years 0000 to 9999 in
// UTC, which ISO-8601 dates and knit's exports write in four digits. Only
// a zone offset at either end, or the clock-skew correction, gets there.
func checkTimeRange(t time.Time) error {
	if year := t.UTC().Year(); year >= 0 && year <= 9999 {
		return nil
	}
	return Errorf(EInvalid, "timestamp falls in the year %d in UTC (after correcting "+
		"for zone and clock skew); knit keeps times from year 0000 to 9999",
		t.UTC().Year())
}

// firstTime returns the first of keys present in fields, parsed, and which
// key it was; "" when none is present.
func firstTime(fields map[string]any, keys ...string) (time.Time, string, error) {
	for _, key := range keys {
		value, present := fields[key]
		if !present || value == nil {
			continue
		}
		text, isText := value.(string)
		if !isText || strings.TrimSpace(text) == "" {
			return time.Time{}, "", Errorf(EInvalid,
				"%s must be an ISO-8601 date string", key)
		}
		t, ok := ParseTime(text)
		if !ok {
			return time.Time{}, "", Errorf(EInvalid,
				"%s %q is not an ISO-8601 date", key, text)
		}
		return t, key, nil
	}
	return time.Time{}, "", nil
}
