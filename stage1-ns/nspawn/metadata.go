package nspawn

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/skiffpod/skiff/pkg/metadata"
	"github.com/skiffpod/skiff/pkg/netns"
	"github.com/skiffpod/skiff/pkg/pod"
)

// serveMetadata starts the pod's metadata service (docs/metadata.md) on
// the loopback of the pod's network: inside its namespace when it has one,
// so nothing outside the pod reaches it, else on the host's, where the
// token keeps other processes out. A pod with --net=none gets its
// namespace here, so the service can listen in it: a, as returned, makes
// nspawn join it instead of making one. It returns AC_METADATA_URL and
// what stops the service.
func serveMetadata(log *slog.Logger, a *pod.RunArgs) (string, func(), error) {
	svc, err := metadata.ForPod(a.UUID)
	if err != nil {
		return "", nil, err
	}
	var l net.Listener
	listen := func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}
	var ns *os.File
	switch {
	case a.NetNS != "":
		err = netns.Do(a.NetNS, listen)
	case a.Net == "none":
		if ns, err = netns.New(); err == nil {
			err = netns.DoFile(ns, listen)
			// nspawn opens it by this path (run's fd, inherited by no one).
			a.Net, a.NetNS = "", fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), ns.Fd())
		}
	default:
		err = listen()
	}
	if err != nil {
		if ns != nil {
			ns.Close()
		}
		return "", nil, fmt.Errorf("metadata service: %w", err)
	}
	done := make(chan struct{})
	go func() {
		if err := svc.Serve(l); err != nil {
			log.Warn("metadata service", "err", err)
		}
		close(done)
	}()
	stop := sync.OnceFunc(func() {
		l.Close()
		<-done
		if ns != nil {
			ns.Close()
		}
	})
	return svc.URL(l.Addr().String()), stop, nil
}
