package audiences

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/knit-cdp/knit/resolver/sqldb"
)

// dialectOf picks the audience SQL dialect for db's engine.
func dialectOf(db *sqldb.DB) dialect {
	if db.Dialect() == sqldb.Postgres {
		return postgresDialect{}
	}
	return sqliteDialect{}
}

// readMemberRow reads one row of a compiled query, the profile id and then
// the attribute columns, into a member whose attributes are encoded as
// they are stored.
func readMemberRow(columns []column, values []any) (memberRow, error) {
	id, ok := asInt(*values[0].(*any))
	if !ok {
		return memberRow{}, fmt.Errorf("profile id %v is not a number", *values[0].(*any))
	}
	attributes := make(map[string]any, len(columns))
	for i, col := range columns {
		value, err := attributeValue(col, *values[i+1].(*any))
		if err != nil {
			return memberRow{}, fmt.Errorf("attribute %s: %w", col.name, err)
		}
		attributes[col.name] = value
	}
	encoded, err := json.Marshal(attributes)
	if err != nil {
		return memberRow{}, fmt.Errorf("encode attributes of %d: %w", id, err)
	}
	return memberRow{ProfileID: id, Attributes: string(encoded)}, nil
}

// attributeValue turns a column's database value into what exports carry:
// times as UTC text with milliseconds, numbers rounded, keys as sorted
// text. A NULL is nil.
func attributeValue(col column, value any) (any, error) {
	if value == nil {
		return nil, nil
	}
	switch col.kind {
	case kindTime:
		ms, ok := asInt(value)
		if !ok {
			return nil, fmt.Errorf("time %v is not milliseconds", value)
		}
		return FormatTime(time.UnixMilli(ms)), nil
	case kindInt:
		n, ok := asInt(value)
		if !ok {
			return nil, fmt.Errorf("count %v is not a whole number", value)
		}
		return n, nil
	case kindNumber:
		return roundNumber(value, col.round), nil
	case kindKeys:
		var keys []any
		if err := decodeJSON(asText(value), &keys); err != nil {
			return nil, fmt.Errorf("decode keys: %w", err)
		}
		return sortKeys(keys), nil
	case kindJSON:
		var v any
		if err := decodeJSON(asText(value), &v); err != nil {
			return nil, fmt.Errorf("decode value: %w", err)
		}
		return v, nil
	}
	return asText(value), nil
}

func asInt(value any) (int64, bool) {
	switch v := value.(type) {
	case int64:
		return v, true
	case float64:
		return int64(v), v == math.Trunc(v)
	case []byte:
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func asText(value any) string {
	switch v := value.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(value)
}

// roundNumber rounds to decimals; a value that is not a finite number is
// nil, since no export can encode it.
func roundNumber(value any, decimals int) any {
	var f float64
	switch v := value.(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	default:
		parsed, err := strconv.ParseFloat(asText(value), 64)
		if err != nil {
			return nil
		}
		f = parsed
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	scale := math.Pow(10, float64(decimals))
	if math.Abs(f*scale) > 1e15 {
		return f
	}
	return math.Round(f*scale) / scale
}
