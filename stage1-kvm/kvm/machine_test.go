package kvm

import (
	"reflect"
	"testing"
)

func TestRegisterArgs(t *testing.T) {
	got := registerArgs("0a1b2c3d-0000-4000-8000-00000000000f", 4242, "/var/lib/skiff/pods/run/x/stage1/rootfs")
	want := []any{
		"skiff-0a1b2c3d-0000-4000-8000-00000000000f",
		[]byte{0x0a, 0x1b, 0x2c, 0x3d, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0x0f},
		"skiff", "container", uint32(4242), "/var/lib/skiff/pods/run/x/stage1/rootfs",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registerArgs = %#v\nwant %#v", got, want)
	}
}
