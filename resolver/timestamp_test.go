package resolver_test

import (
	"testing"
	"time"

	"github.com/knit-cdp/knit/resolver"
)

func TestParseTimeAcceptsISO8601AsSegmentSendsIt(t *testing.T) {
	utc := func(year int, month time.Month, day, hour, minute, sec, ms int) time.Time {
		nanos := ms * int(time.Millisecond)
		return time.Date(year, month, day, hour, minute, sec, nanos, time.UTC)
	}

	tests := []struct {
		name string
		text string
		want time.Time
	}{
		{
			name: "RFC 3339 in UTC",
			text: "2026-12-04T15:08:09Z",
			want: utc(2026, 12, 4, 15, 8, 9, 0),
		},
		{
			name: "RFC 3339 with milliseconds",
			text: "2026-12-04T15:08:09.276Z",
			want: utc(2026, 12, 4, 15, 8, 9, 276),
		},
		{
			name: "RFC 3339 with nanoseconds",
			text: "2026-12-04T15:08:09.123456789Z",
			want: time.Date(2026, 12, 4, 15, 8, 9, 123456789, time.UTC),
		},
		{
			name: "lower-case z means UTC",
			text: "2026-12-04t15:08:09z",
			want: utc(2026, 12, 4, 15, 8, 9, 0),
		},
		{
			name: "positive offset with a colon is moved to UTC",
			text: "2026-12-04T15:08:09+02:00",
			want: utc(2026, 12, 4, 13, 8, 9, 0),
		},
		{
			name: "negative offset without a colon is moved to UTC",
			text: "2026-12-04T15:08:09-0530",
			want: utc(2026, 12, 4, 20, 38, 9, 0),
		},
		{
			name: "offset in whole hours is moved to UTC",
			text: "2026-12-04T15:08:09+02",
			want: utc(2026, 12, 4, 13, 8, 9, 0),
		},
		{
			name: "offset that crosses midnight changes the date",
			text: "2026-12-31T23:30:00-01:00",
			want: utc(2027, 1, 1, 0, 30, 0, 0),
		},
		{
			name: "missing zone means UTC",
			text: "2026-12-04T15:08:09.5",
			want: utc(2026, 12, 4, 15, 8, 9, 500),
		},
		{
			name: "a space may separate date and time",
			text: "2026-12-04 15:08:09Z",
			want: utc(2026, 12, 4, 15, 8, 9, 0),
		},
		{
			name: "time without seconds",
			text: "2026-12-04T15:08Z",
			want: utc(2026, 12, 4, 15, 8, 0, 0),
		},
		{
			name: "date only is midnight UTC",
			text: "2026-12-04",
			want: utc(2026, 12, 4, 0, 0, 0, 0),
		},
		{
			name: "Segment's own example without zero padding",
			text: "2015-2-02T00:30:08.276Z",
			want: utc(2015, 2, 2, 0, 30, 8, 276),
		},
		{
			name: "surrounding spaces are ignored",
			text: "  2026-12-04T15:08:09Z ",
			want: utc(2026, 12, 4, 15, 8, 9, 0),
		},
		{
			name: "29 February of a leap year",
			text: "2024-02-29T12:00:00Z",
			want: utc(2024, 2, 29, 12, 0, 0, 0),
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := resolver.ParseTime(tt.text)
			if !ok {
				t.Fatalf("ParseTime(%q) reported false", tt.text)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseTime(%q) = %v, want %v", tt.text, got, tt.want)
			}
			if got.Location() != time.UTC {
				t.Errorf("ParseTime(%q) is in %v, want UTC", tt.text, got.Location())
			}
		})
	}
}

func TestParseTimeRejectsWhatIsNotADate(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{name: "empty text", text: ""},
		{name: "garbage", text: "yesterday at noon"},
		{name: "a Unix timestamp", text: "1733324889"},
		{name: "an RFC 1123 date", text: "Fri, 04 Dec 2026 15:08:09 GMT"},
		{name: "month 13", text: "2026-13-01T00:00:00Z"},
		{name: "month 0", text: "2026-00-10T00:00:00Z"},
		{name: "day 0", text: "2026-01-00"},
		{name: "31 April", text: "2026-04-31T10:00:00Z"},
		{name: "29 February of a common year", text: "2026-02-29"},
		{name: "hour 24", text: "2026-12-04T24:00:00Z"},
		{name: "minute 60", text: "2026-12-04T10:60:00Z"},
		{name: "offset hours above 23", text: "2026-12-04T10:00:00+24:00"},
		{name: "offset minutes above 59", text: "2026-12-04T10:00:00+02:60"},
		{name: "one-digit offset", text: "2026-12-04T10:00:00+2"},
		{name: "trailing text after the zone", text: "2026-12-04T10:00:00Z later"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := resolver.ParseTime(tt.text); ok {
				t.Errorf("ParseTime(%q) = %v, true; want false", tt.text, got)
			}
		})
	}
}
