package resolver

import "testing"

func TestColumnArraysKeepNullsAndRefuseMixedColumns(t *testing.T) {
	rows := [][]any{{"a", int64(1), nil}, {"b", nil, nil}, {"c", int64(3), 4.5}}

	texts, cast, err := columnArray(rows, 0)
	if err != nil || cast != "CAST(? AS TEXT[])" || len(texts.([]string)) != 3 {
		t.Errorf("column of strings: %v %q %v", texts, cast, err)
	}

	numbers, cast, err := columnArray(rows, 1)
	got := numbers.([]*int64)
	if err != nil || cast != "CAST(? AS BIGINT[])" || *got[0] != 1 || got[1] != nil ||
		*got[2] != 3 {
		t.Errorf("column of numbers and NULLs: %v %q %v", got, cast, err)
	}

	if _, _, err := columnArray(rows, 2); err == nil {
		t.Error("a column holding a float was turned into an array")
	}
	mixed := [][]any{{"a"}, {int64(1)}}
	if _, _, err := columnArray(mixed, 0); err == nil {
		t.Error("a column of strings and numbers was turned into an array")
	}
}
