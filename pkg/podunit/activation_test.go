package podunit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

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
		"notifier":   {Annotations: types.Annotations{{Name: "appc.io/executor/supports-systemd-notify", Value: "true"}}},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	units, pass, err := ActivationUnits(log, imgs, []*os.File{tf, uf, of}, nil)
	if err != nil {
		t.Fatal(err)
	}
	notify := map[string]string{"skiff-app-notifier.service.d/skiff-notify.conf": "[Service]\nType=notify\nNotifyAccess=all\n"}
	want := map[string]string{
		"skiff-app-web.socket": fmt.Sprintf("[Unit]\nDescription=skiff app web sockets\nDefaultDependencies=no\n\n[Socket]\n"+
			"ListenStream=127.0.0.1:%d\nListenDatagram=127.0.0.1:%d\n", tcpPort, udpPort),
		"skiff-app-web.service.d/skiff-sockets.conf": "[Service]\nSockets=skiff-app-web.socket\n",
		"-.slice.d/skiff-sockets.conf":               "[Unit]\nBefore=skiff-app-web.socket\n",
	}
	maps.Copy(want, notify)
	if !maps.Equal(units, want) {
		t.Errorf("units = %q\nwant %q", units, want)
	}
	if len(pass) != 2 || pass[0] != tf || pass[1] != uf {
		t.Errorf("passed %v, want the tcp and udp sockets", pass)
	}
	if err := of.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the socket no app wants is still open (close: %v)", err)
	}
	if u, p, err := ActivationUnits(log, imgs, nil, nil); !maps.Equal(u, notify) || len(p) != 0 || err != nil {
		t.Errorf("no sockets: got %q, %v, %v; want only %q", u, p, err, notify)
	}
}

// TestActivationUnitsListen: a stage1 that makes the pod's sockets itself
// (stage1-kvm) says where they listen, and can refuse a socket type.
func TestActivationUnitsListen(t *testing.T) {
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
	tcpPort, udpPort := tcp.Addr().(*net.TCPAddr).Port, udp.LocalAddr().(*net.UDPAddr).Port
	imgs := map[string]*schema.ImageManifest{"web": {App: &types.App{Ports: []types.Port{
		{Name: "http", Protocol: "tcp", Port: uint(tcpPort), SocketActivated: true},
		{Name: "dns", Protocol: "udp", Port: uint(udpPort), SocketActivated: true},
	}}}}
	errDgram := errors.New("no datagrams")
	listen := func(typ int, a netip.AddrPort) (netip.AddrPort, error) {
		if typ != unix.SOCK_STREAM {
			return netip.AddrPort{}, errDgram
		}
		return netip.AddrPortFrom(netip.IPv6Loopback(), a.Port()), nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	tf, _ := tcp.(*net.TCPListener).File()
	units, pass, err := ActivationUnits(log, imgs, []*os.File{tf}, listen)
	if err != nil || len(pass) != 1 || pass[0] != tf {
		t.Fatalf("got %v, %v; want the tcp socket passed", pass, err)
	}
	if got, want := units["skiff-app-web.socket"], fmt.Sprintf("ListenStream=[::1]:%d\n", tcpPort); !strings.HasSuffix(got, want) {
		t.Errorf("socket unit = %q, want it to end in %q", got, want)
	}
	tf.Close()

	tf, _ = tcp.(*net.TCPListener).File()
	uf, _ := udp.(*net.UDPConn).File()
	units, pass, err = ActivationUnits(log, imgs, []*os.File{tf, uf}, listen)
	if !errors.Is(err, errDgram) || units != nil || pass != nil {
		t.Fatalf("got %q, %v, %v; want %v", units, pass, err, errDgram)
	}
	if want := fmt.Sprintf("socket activation of ListenDatagram=127.0.0.1:%d (app web)", udpPort); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the socket and the app (%q)", err, want)
	}
	for _, f := range []*os.File{tf, uf} {
		if err := f.Close(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s still open after the refusal (close: %v)", f.Name(), err)
		}
	}
}

func TestNotifyBind(t *testing.T) {
	notify := types.Annotations{{Name: "appc.io/executor/supports-systemd-notify", Value: "true"}}
	off := types.Annotations{{Name: "appc.io/executor/supports-systemd-notify", Value: "false"}}
	tests := []struct {
		name string
		ann  types.Annotations
		want int // mounts added
	}{
		{"supports notify", notify, 1},
		{"says it does not", off, 0},
		{"no annotation", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &specs.Spec{Mounts: []specs.Mount{{Destination: "/proc", Type: "proc"}}}
			NotifyBind(s, &schema.ImageManifest{Annotations: tt.ann})
			if got := len(s.Mounts) - 1; got != tt.want {
				t.Fatalf("mounts added: %d, want %d: %+v", got, tt.want, s.Mounts)
			}
			if m := s.Mounts[len(s.Mounts)-1]; tt.want == 1 && (m.Destination != NotifySocket || m.Source != NotifySocket || m.Type != "bind") {
				t.Errorf("mount = %+v, want a bind of %s at the same path", m, NotifySocket)
			}
		})
	}
}
