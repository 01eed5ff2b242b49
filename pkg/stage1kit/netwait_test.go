package stage1kit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
)

// run's side of --net-wait: "ok" lets the apps start, "fail" and a
// socket closed without a word are told apart, and end waits for the
// other side to close.
func TestNetWait(t *testing.T) {
	for _, tt := range []struct {
		name, say string
		want      error
	}{
		{"ok", "ok\n", nil},
		{"fail", "fail\n", errNetFailed},
		{"died", "", errNetDied},
		{"died mid-line", "o", errNetDied},
		{"garbage", "maybe\n", errNetDied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if err := os.MkdirAll(filepath.Join(pod.Stage1Rootfs, "skiff"), 0o755); err != nil {
				t.Fatal(err)
			}
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			stage0 := os.NewFile(uintptr(fds[1]), "stage0")
			nw, err := openNetWait(fds[0])
			if err != nil {
				t.Fatal(err)
			}
			stage0.WriteString(tt.say)
			if tt.want != errNetFailed {
				stage0.Close() // net-attach exits after its word, or dies
			}
			if err := nw.wait(nil); !errors.Is(err, tt.want) {
				t.Errorf("wait = %v, want %v", err, tt.want)
			}
			_, err = os.Stat(pod.Stage1Rootfs + pod.InPodNetReady)
			if ready := err == nil; ready != (tt.want == nil) {
				t.Errorf("net-ready file there: %v, want %v", ready, tt.want == nil)
			}
			ended := make(chan struct{})
			go func() { nw.end(); close(ended) }()
			if tt.want == errNetFailed {
				stage0.Close() // after it removed the pod
			}
			<-ended
		})
	}
}
