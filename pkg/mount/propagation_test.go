package mount

import "testing"

func TestPropagation(t *testing.T) {
	for _, tc := range []struct {
		optional      string
		shared, slave bool
	}{
		{"", false, false},
		{"shared:1", true, false},
		{"master:7", false, true},
		{"shared:3 master:7", true, true},
		{"propagate_from:2 master:7", false, true},
		{"unbindable", false, false},
	} {
		shared, slave := propagation(tc.optional)
		if shared != tc.shared || slave != tc.slave {
			t.Errorf("propagation(%q) = %v, %v; want %v, %v", tc.optional, shared, slave, tc.shared, tc.slave)
		}
	}
	// The root is some mount: its fields are read, whatever they say.
	if _, _, err := Propagation("/"); err != nil {
		t.Errorf("Propagation(/): %v", err)
	}
	if _, _, err := Propagation("/no/such/path"); err == nil {
		t.Error("Propagation of a missing path: no error")
	}
}
