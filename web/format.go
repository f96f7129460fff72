package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
)

// exactLayout is how the console writes an exact time: always with its
// zone, UTC.
const exactLayout = "2 Jan 2006 15:04:05 MST"

// formatFuncs are the template functions that write numbers and times for
// people; now is the clock relative times are counted from.
func formatFuncs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"ago":    func(t any) template.HTML { return relativeTime(asTime(t), now()) },
		"num":    groupDigits,
		"window": describeWindow,
		"pct": func(part, whole int) string {
			if whole == 0 {
				return "0%"
			}
			return strconv.Itoa(part*100/whole) + "%"
		},
	}
}

// relativeTime is a <time> element reading "3 hours ago" (or "in 5
// minutes"), with the exact time in its tooltip and datetime attribute.
func relativeTime(t, now time.Time) template.HTML {
	if t.IsZero() {
		return "never"
	}
	exact := t.UTC().Format(exactLayout)
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`,
		t.UTC().Format(time.RFC3339), exact,
		template.HTMLEscapeString(describeSpan(now.Sub(t)))))
}

// describeSpan says how long ago (positive) or ahead (negative) d is, in
// the largest unit that fits.
func describeSpan(d time.Duration) string {
	future := d < 0
	if future {
		d = -d
	}
	var text string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		text = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		text = plural(int(d/time.Hour), "hour")
	case d < 60*24*time.Hour:
		text = plural(int(d/(24*time.Hour)), "day")
	default:
		text = plural(int(d/(30*24*time.Hour)), "month")
	}
	if future {
		return "in " + text
	}
	return text + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// groupDigits writes a whole number with thousands separators: 12,345.
func groupDigits(n any) string {
	var v int64
	switch x := n.(type) {
	case int:
		v = int64(x)
	case int64:
		v = x
	default:
		return fmt.Sprint(n)
	}
	text := strconv.FormatInt(v, 10)
	sign := ""
	if strings.HasPrefix(text, "-") {
		sign, text = "-", text[1:]
	}
	var b strings.Builder
	for i, digit := range text {
		if i > 0 && (len(text)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(digit)
	}
	return sign + b.String()
}

// describeWindow writes a limit's window as people say it: "7 days",
// "12 hours".
func describeWindow(d time.Duration) string {
	day := 24 * time.Hour
	if d%day == 0 {
		return plural(int(d/day), "day")
	}
	if d%time.Hour == 0 {
		return plural(int(d/time.Hour), "hour")
	}
	return d.String()
}
