package podunit

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// systemd's socket activation (sd_listen_fds(3)) and readiness
// (sd_notify(3)) protocols, passed from the service manager that started
// run through the pod's systemd to the apps.

// NotifySocket is where the pod's systemd listens for sd_notify(3)
// messages; apps that support notify get it bound into their root.
const NotifySocket = "/run/systemd/notify"

// SupportsNotify reports whether img says its app sends READY=1 to
// NOTIFY_SOCKET (appc's executor annotation); its unit then waits for it.
func SupportsNotify(img *schema.ImageManifest) bool {
	v, _ := img.Annotations.Get("appc.io/executor/supports-systemd-notify")
	return v == "true"
}

// NotifyBind gives the app of img, when it supports notify, the pod
// systemd's notify socket, which the app's own root does not have, at the
// same path: its unit waits for its READY=1, and stage2 passes
// NOTIFY_SOCKET on.
func NotifyBind(s *specs.Spec, img *schema.ImageManifest) {
	if SupportsNotify(img) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: NotifySocket, Type: "bind", Source: NotifySocket, Options: []string{"bind"}})
	}
}

// dropIn is the path, relative to the unit directory, of drop-in name of unit.
func dropIn(unit, name string) string { return unit + ".d/skiff-" + name + ".conf" }

// ListenFDs returns the sockets the service manager passed to run
// (sd_listen_fds(3)): stage0 exec'd run in place, so LISTEN_PID names run.
func ListenFDs() ([]*os.File, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("run: %w: LISTEN_FDS=%q", ErrUsage, os.Getenv("LISTEN_FDS"))
	}
	var files []*os.File
	for fd := 3; fd < 3+n; fd++ {
		unix.CloseOnExec(fd)
		files = append(files, os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(fd)))
	}
	return files, nil
}

// ListenAddr returns the address the pod's own socket listens on for a
// passed socket of type typ (unix.SOCK_STREAM or SOCK_DGRAM) bound to
// addr, or an error when the stage1 cannot carry such a socket. nil keeps
// addr: the pod's systemd then adopts the passed socket itself (stage1-ns).
// stage1-kvm's guest makes a socket of its own and run forwards to it.
type ListenAddr func(typ int, addr netip.AddrPort) (netip.AddrPort, error)

// ActivationUnits returns, by path relative to the unit directory, the
// unit files that give apps what they ask for in their image manifests
// (imgs, by app name), and the sockets to hand the pod's systemd:
//
//   - an app that supports notify gets Type=notify, so that its unit (and
//     the pod's readiness) waits for its READY=1;
//   - each passed socket goes, by port number and protocol, to the app
//     whose image marks that port socketActivated: the app gets a socket
//     unit whose addresses are exactly the sockets' (so the pod's systemd
//     adopts the fds it is passed, see systemd.socket(5)), or those listen
//     returns, and a drop-in that gives its service those sockets. A socket
//     no app wants is closed.
//
// When listen fails for a socket, every socket is closed and its error
// returned.
func ActivationUnits(log *slog.Logger, imgs map[string]*schema.ImageManifest, listeners []*os.File, listen ListenAddr) (map[string]string, []*os.File, error) {
	units := map[string]string{}
	var pass []*os.File
	names := slices.Sorted(maps.Keys(imgs))
	for _, n := range names {
		if SupportsNotify(imgs[n]) {
			units[dropIn(UnitName(n), "notify")] = "[Service]\nType=notify\nNotifyAccess=all\n"
		}
	}
	listenOn := map[string][]string{} // app → Listen*= lines
	for i, f := range listeners {
		typ, addr, err := socketAddr(int(f.Fd()))
		proto := protocols[typ]
		app := ""
		for _, n := range names {
			if a := imgs[n].App; a != nil && app == "" && err == nil {
				for _, p := range a.Ports {
					if p.SocketActivated && int(p.Port) == int(addr.Port()) && p.Protocol == proto {
						app = n
					}
				}
			}
		}
		if app == "" {
			desc := f.Name()
			if err == nil {
				desc = setting(typ, addr)
			}
			log.Warn("no app has this socket-activated port; not passing the socket", "socket", desc, "err", err)
			f.Close()
			continue
		}
		if listen != nil {
			a, err := listen(typ, addr)
			if err != nil {
				for _, f := range append(pass, listeners[i:]...) {
					f.Close()
				}
				return nil, nil, fmt.Errorf("run: socket activation of %s (app %s): %w", setting(typ, addr), app, err)
			}
			addr = a
		}
		listenOn[app] = append(listenOn[app], setting(typ, addr))
		pass = append(pass, f)
	}
	var socks []string
	for _, app := range names {
		lines, ok := listenOn[app]
		if !ok {
			continue
		}
		u := UnitName(app)
		sock := strings.TrimSuffix(u, ".service") + ".socket"
		units[sock] = fmt.Sprintf("[Unit]\nDescription=skiff app %s sockets\nDefaultDependencies=no\n\n[Socket]\n%s\n", app, strings.Join(lines, "\n"))
		units[dropIn(u, "sockets")] = "[Service]\nSockets=" + sock + "\n"
		socks = append(socks, sock)
	}
	if len(socks) > 0 {
		// systemd hands inherited fds only to units loaded when it
		// starts, before it loads the default target: a dependency of the
		// root slice (loaded first, always) loads the socket units then.
		units[dropIn("-.slice", "sockets")] = "[Unit]\nBefore=" + strings.Join(socks, " ") + "\n"
	}
	return units, pass, nil
}

// protocols are the appc port protocols of the socket types matched.
var protocols = map[int]string{unix.SOCK_STREAM: "tcp", unix.SOCK_DGRAM: "udp"}

// setting is the socket unit setting for a socket of type typ at addr:
// ListenStream=ADDR:PORT or ListenDatagram=ADDR:PORT.
func setting(typ int, addr netip.AddrPort) string {
	switch typ {
	case unix.SOCK_STREAM:
		return "ListenStream=" + addr.String()
	case unix.SOCK_DGRAM:
		return "ListenDatagram=" + addr.String()
	}
	return fmt.Sprintf("socket type %d at %s", typ, addr)
}

// socketAddr returns the type and address of the IP socket fd.
func socketAddr(fd int) (typ int, addr netip.AddrPort, err error) {
	typ, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return 0, addr, fmt.Errorf("inherited socket %d: %w", fd, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, addr, fmt.Errorf("inherited socket %d: %w", fd, err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		addr = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	default:
		return 0, addr, fmt.Errorf("inherited socket %d: %w: not an IP socket", fd, ErrUsage)
	}
	if _, ok := protocols[typ]; !ok {
		return 0, addr, fmt.Errorf("inherited socket %d: %w: socket type %d", fd, ErrUsage, typ)
	}
	return typ, addr, nil
}
