package aci

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
)

// deepImage has a directory chain depth levels deep under rootfs/, each
// level as its own entry holding one file: the shape whose extraction was
// quadratic in depth.
func deepImage(t testing.TB, depth int) []byte {
	es := []acitest.Entry{{Name: "manifest", Body: acitest.Manifest("example.com/deep")}, {Name: "rootfs/"}}
	p := "rootfs/"
	for i := 0; i < depth-1; i++ {
		p += "d/"
		es = append(es, acitest.Entry{Name: p}, acitest.Entry{Name: p + "f", Body: "x"})
	}
	return acitest.Tar(t, es...)
}

func TestExtractDeepIsFast(t *testing.T) {
	img := deepImage(t, MaxDepth)
	root, dir, _ := sandbox(t)
	start := time.Now()
	if _, err := Extract(bytes.NewReader(img), root, ExtractOptions{NoChown: os.Geteuid() != 0}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("extracting %d levels took %v", MaxDepth, d)
	} else {
		t.Logf("extracting %d levels took %v", MaxDepth, d)
	}
	if _, err := os.Stat(dir + "/rootfs/" + strings.Repeat("d/", MaxDepth-1) + "f"); err != nil {
		t.Error(err)
	}
}
