package resolver

import (
	"context"
	"fmt"
	"reflect"
	"sort"

	"github.com/jmoiron/sqlx"
)

// inChunk bounds the values one IN (...) list names, below SQLite's
// parameter limit and PostgreSQL's.
const inChunk = 500

// forChunks calls fn with consecutive pieces of values (a slice) of at
// most inChunk elements; an empty slice calls nothing.
func forChunks(values any, fn func(chunk any) error) error {
	v := reflect.ValueOf(values)
	for start := 0; start < v.Len(); start += inChunk {
		if err := fn(v.Slice(start, min(start+inChunk, v.Len())).Interface()); err != nil {
			return err
		}
	}
	return nil
}

// appendSelect runs query and appends its rows to the slice dest points to.
func appendSelect(ctx context.Context, tx *sqlx.Tx, dest any, query string, args []any) error {
	slice := reflect.ValueOf(dest).Elem()
	part := reflect.New(slice.Type())
	if err := tx.SelectContext(ctx, part.Interface(), query, args...); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	slice.Set(reflect.AppendSlice(slice, part.Elem()))
	return nil
}

// uniqueStrings returns values sorted without repeats.
func uniqueStrings(values []string) []string {
	sort.Strings(values)
	out := values[:0]
	for i, v := range values {
		if i == 0 || v != values[i-1] {
			out = append(out, v)
		}
	}
	return out
}
