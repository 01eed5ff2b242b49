package kvm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/attach"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/vm"
	"github.com/skiffpod/skiff/pkg/vm/forward"
)

// Socket activation of a KVM pod (docs/networking.md): the guest's
// systemd makes each app's socket anew on the guest's loopback
// (guestListen), and run forwards the connections accepted on the sockets
// the service manager passed it to those, over the skiff.fwd port.

// guestListen is the guest's own socket for a passed socket at addr: a
// stream socket on the guest's loopback, of the same family and port. The
// pod network (when there is one) never reaches it: a socket the host
// bound to 127.0.0.1 stays reachable only through the host's.
func guestListen(typ int, addr netip.AddrPort) (netip.AddrPort, error) {
	if typ != unix.SOCK_STREAM {
		return netip.AddrPort{}, fmt.Errorf("%w: stage1-kvm forwards only stream (TCP) sockets into the guest", ErrUsage)
	}
	lo := netip.IPv6Loopback()
	if addr.Addr().Unmap().Is4() {
		lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return netip.AddrPortFrom(lo, addr.Port()), nil
}

// forwardListeners turns the passed sockets into listeners with their
// guest addresses; the files are closed (the listeners hold copies). A
// socket that does not listen (an Accept=yes unit passes a connection) is
// refused.
func forwardListeners(files []*os.File) ([]forward.Listener, error) {
	var ls []forward.Listener
	var errs []error
	for _, f := range files {
		var l net.Listener
		listening, err := unix.GetsockoptInt(int(f.Fd()), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if err == nil && listening == 0 {
			err = fmt.Errorf("%w: not a listening socket (socket units with Accept=yes are not supported)", ErrUsage)
		}
		if err == nil {
			l, err = net.FileListener(f)
		}
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("run: passed socket %s: %w", f.Name(), err))
			continue
		}
		ap := l.Addr().(*net.TCPAddr).AddrPort()
		g, err := guestListen(unix.SOCK_STREAM, ap)
		if err != nil {
			l.Close()
			errs = append(errs, err)
			continue
		}
		ls = append(ls, forward.Listener{Listener: l, Guest: g})
	}
	if err := errors.Join(errs...); err != nil {
		closeListeners(ls)
		return nil, err
	}
	return ls, nil
}

func closeListeners(ls []forward.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// startForward forwards the connections of ls into the guest once every
// app has started (the guest's ready marker): by then the apps' sockets
// listen (their units are ordered after the sockets). Until then the
// connections wait in the host sockets' queues, the first one too.
func startForward(log *slog.Logger, v *vm.VM, s *forward.Session, ls []forward.Listener) {
	go func() {
		if !awaitReady(v) {
			return
		}
		log.Debug("forwarding connections into the guest", "sockets", len(ls))
		if err := s.Forward(ls); err != nil {
			select {
			case <-v.Done(): // the listeners were closed as the pod ended
			default:
				log.Warn("forward connections", "err", err)
			}
		}
	}()
}

// serveDial listens on dial.sock in the pod directory, where enter
// --port-forward connects: each connection names a loopback address of
// the guest and is joined to a stream of s to it (forward.ServeDial). A
// socket left by a crashed run is replaced.
func serveDial(log *slog.Logger, v *vm.VM, s *forward.Session) (net.Listener, error) {
	os.Remove(dialSocket)
	l, err := net.Listen("unix", dialSocket)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	go func() {
		if err := s.ServeDial(l); err != nil {
			select {
			case <-v.Done(): // closed as the pod ended
			default:
				log.Warn("port forward", "err", err)
			}
		}
	}()
	return l, nil
}

// portForward connects stdin and stdout to port on the guest's loopback,
// where the apps listen (enter --port-forward), through run's dial.sock
// and the skiff.fwd port; it returns when both directions have ended. A
// port nothing listens on in the guest is a connection closed at once.
func portForward(port uint, stdin io.Reader, stdout io.Writer) error {
	conn, err := dialGuest(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port forward %d: %w", port, err)
	}
	defer conn.Close()
	go func() {
		io.Copy(conn, stdin)
		conn.(*net.UnixConn).CloseWrite()
	}()
	if _, err := io.Copy(stdout, conn); err != nil {
		return fmt.Errorf("port forward %d: %w", port, err)
	}
	// The guest's side ended; the caller's stdin may stay open.
	return nil
}

// attachApp connects the caller's stdio to app's relay in the guest
// (enter --attach): stage2's relay listens on podunit.AttachSocket in the
// guest's tmpfs there, and the agent connects to it for a stream
// "unix:APP" (forward.Guest); pkg/attach's protocol runs end to end. An
// app without a relay is a stream closed at once: nothing comes, exit 0.
func attachApp(a pod.EnterArgs) error {
	conn, err := dialGuest("unix:" + a.App)
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.App, err)
	}
	return attach.Caller(conn, a.App, a.Stdin)
}

// dialGuest connects to run's dial.sock for a stream to target in the
// guest (forward.ServeDial: a loopback address, or unix:NAME).
func dialGuest(target string) (net.Conn, error) {
	conn, err := net.Dial("unix", dialSocket)
	for deadline := time.Now().Add(startTimeout); errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		conn, err = net.Dial("unix", dialSocket)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRunning, err)
	}
	if _, err := fmt.Fprintf(conn, "%s\n", target); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// awaitReady waits until the guest has written the ready marker into the
// shared tree (true) or qemu has exited (false).
func awaitReady(v *vm.VM) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(pod.ReadyFile); err == nil {
			return true
		}
		select {
		case <-v.Done():
			return false
		case <-tick.C:
		}
	}
}
