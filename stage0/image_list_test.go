package main

import (
	"reflect"
	"testing"
)

func TestPickColumns(t *testing.T) {
	row := []string{"sha512-1", "aci", "n", "v", "1", "verified", "1 MiB", "t1", "never", "sha512:1"}
	tests := []struct {
		fields  string
		want    []string
		wantErr bool
	}{
		{"", row, false},
		{"id,name", []string{"sha512-1", "n"}, false},
		{"name, id", []string{"n", "sha512-1"}, false}, // order as given, spaces trimmed
		{"ID,Size,ImportTime,LastUsed", []string{"sha512-1", "1 MiB", "t1", "never"}, false},
		{"name,digest", []string{"n", "sha512:1"}, false},
		{"id,bogus", nil, true},
		{"id,", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.fields, func(t *testing.T) {
			cols, err := pickColumns(tt.fields)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(pick(row, cols), tt.want) {
				t.Errorf("pick = %q, want %q", pick(row, cols), tt.want)
			}
		})
	}
}
