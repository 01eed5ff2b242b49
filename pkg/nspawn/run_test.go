package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func TestNspawnArgs(t *testing.T) {
	tests := []struct {
		o    RunOptions
		want []string
	}{
		{RunOptions{UUID: "u", Net: "none"}, []string{"--private-network", "--console=read-only", "--quiet"}},
		{RunOptions{UUID: "u", Hostname: "h", Interactive: true, Debug: true}, []string{"--hostname=h", "--console=interactive", "systemd.log_level=debug"}},
	}
	for _, tt := range tests {
		args, err := nspawnArgs(tt.o, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			found := false
			for _, a := range args {
				found = found || a == w
			}
			if !found {
				t.Errorf("nspawnArgs(%+v) = %q, missing %q", tt.o, args, w)
			}
		}
	}
	if _, err := nspawnArgs(RunOptions{Net: "bridge"}, nil); err == nil {
		t.Error("nspawnArgs accepted --net=bridge")
	}
}

func TestDropLine(t *testing.T) {
	const noise = "Attempted to remove disk file system under \"/run/systemd/nspawn/propagate/skiff-u\", and we can't allow that."
	tests := []struct {
		writes []string
		want   string
	}{
		{[]string{"a\n" + noise + "\nb\n"}, "a\nb\n"},
		{[]string{"a\nAttempted to remove", " disk file system under \"/run/systemd/nspawn/propagate/skiff-u\", and we can't allow that.\n"}, "a\n"},
		{[]string{"x" + noise + "\n"}, "x" + noise + "\n"}, // only the whole line
		{[]string{noise}, ""},
		{[]string{"no newline"}, "no newline"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := &dropLine{w: &buf, line: fmt.Sprintf(propagateNoise, "skiff-u")}
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tt.want {
			t.Errorf("dropLine(%q) = %q, want %q", tt.writes, buf.String(), tt.want)
		}
	}
}

func TestActivationUnits(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tcpPort, udpPort := tcp.Addr().(*net.TCPAddr).Port, udp.LocalAddr().(*net.UDPAddr).Port
	tf, _ := tcp.(*net.TCPListener).File()
	uf, _ := udp.(*net.UDPConn).File()
	of, _ := other.(*net.TCPListener).File()

	img := func(ports ...types.Port) *schema.ImageManifest {
		return &schema.ImageManifest{App: &types.App{Ports: ports}}
	}
	imgs := map[string]*schema.ImageManifest{
		"web": img(types.Port{Name: "http", Protocol: "tcp", Port: uint(tcpPort), SocketActivated: true},
			types.Port{Name: "dns", Protocol: "udp", Port: uint(udpPort), SocketActivated: true}),
		// Same port, not socket-activated: never gets the socket.
		"plain": img(types.Port{Name: "http", Protocol: "tcp", Port: uint(tcpPort)}),
		// The udp port number over tcp: the protocol must match too.
		"wrongproto": img(types.Port{Name: "x", Protocol: "tcp", Port: uint(udpPort), SocketActivated: true}),
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	units, pass := activationUnits(log, imgs, []*os.File{tf, uf, of})
	want := map[string]string{
		"skiff-app-web.socket": fmt.Sprintf("[Unit]\nDescription=skiff app web sockets\nDefaultDependencies=no\n\n[Socket]\n"+
			"ListenStream=127.0.0.1:%d\nListenDatagram=127.0.0.1:%d\n", tcpPort, udpPort),
		"skiff-app-web.service.d/skiff-sockets.conf": "[Service]\nSockets=skiff-app-web.socket\n",
		"-.slice.d/skiff-sockets.conf":               "[Unit]\nBefore=skiff-app-web.socket\n",
	}
	if !maps.Equal(units, want) {
		t.Errorf("units = %q\nwant %q", units, want)
	}
	if len(pass) != 2 || pass[0] != tf || pass[1] != uf {
		t.Errorf("passed %v, want the tcp and udp sockets", pass)
	}
	if err := of.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the socket no app wants is still open (close: %v)", err)
	}
	if u, p := activationUnits(log, imgs, nil); len(u) != 0 || len(p) != 0 {
		t.Errorf("no sockets: got %q, %v", u, p)
	}
}

func TestPodExit(t *testing.T) {
	apps := []App{{Name: "a"}, {Name: "b"}}
	tests := []struct {
		name    string
		files   map[string]string
		stopped bool
		want    int
		wantErr bool
	}{
		{"all succeeded", map[string]string{statusDir + "/a": "0", statusDir + "/b": "0"}, false, 0, false},
		{"first failure wins", map[string]string{statusDir + "/a": "3", statusDir + "/b": "143", failedFile: "a"}, false, 3, false},
		{"failed without status of its own", map[string]string{statusDir + "/a": "0", failedFile: "a"}, false, 1, false},
		{"app without status", map[string]string{statusDir + "/a": "0"}, false, 0, true},
		{"stopped before b started", map[string]string{statusDir + "/a": "0"}, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tt.files {
				p = filepath.Join(root, p)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := podExit(root, apps, tt.stopped)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("podExit = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCatches(t *testing.T) {
	sleep := exec.Command("sleep", "10")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	tests := []struct {
		name string
		pid  int
		want bool
	}{
		{"go program (handles every signal)", os.Getpid(), true},
		{"sleep (default actions)", sleep.Process.Pid, false},
		{"no pid yet", 0, false},
	}
	for _, tt := range tests {
		if got := catches(tt.pid, sigPoweroff); got != tt.want {
			t.Errorf("%s: catches(%d, SIGRTMIN+4) = %v, want %v", tt.name, tt.pid, got, tt.want)
		}
	}
}
