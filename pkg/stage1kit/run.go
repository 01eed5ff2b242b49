package stage1kit

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// run is the run entrypoint: it boots the pod, drives it until it ends
// and exits with the status of the first app that failed, 0 when all
// succeeded, pod.ExitFailure on its own failure.
func (s Stage1) run(argv []string) int {
	var a pod.RunArgs
	if !s.parse(&a, argv) {
		return pod.ExitFailure
	}
	log := Logger(s.Name, pod.EntrypointRun, a.UUID, a.Debug)
	st, err := s.runPod(log, a)
	if err != nil {
		log.Error("run pod", "err", err)
		return pod.ExitFailure
	}
	return st
}

func (s Stage1) runPod(log *slog.Logger, a pod.RunArgs) (int, error) {
	if err := KeepLock(); err != nil {
		return 0, err
	}
	// Signals are caught from before the pod starts: one that comes while
	// it boots is held until the pod can act on it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	var nw *netWait
	if a.NetWait != 0 {
		// The pod's network is attached while it boots: its apps wait
		// for stage0's word (pod.RunArgs.NetWait).
		var err error
		if nw, err = openNetWait(a.NetWait); err != nil {
			return 0, err
		}
		defer nw.end()
	}
	p, apps, err := s.Isolator.Boot(log, a)
	if err != nil {
		return 0, err
	}
	// The pod is started: run mostly waits from here on.
	if err := PageOutBinary(); err != nil {
		log.Debug("idle", "err", err)
	}
	var net chan error
	var nerr error
	netDone := make(chan struct{})
	if nw != nil {
		net = make(chan error, 1)
		go func() {
			nerr = nw.wait(apps)
			close(netDone)
			net <- nerr
		}()
	} else {
		close(netDone)
	}
	werr := loop(log, p, sigs, os.Getenv("NOTIFY_SOCKET") != "", pod.ReadyFile, net)
	// A pod that ended by itself while its network was being attached
	// still learns how the attach went.
	<-netDone
	switch {
	case errors.Is(nerr, errNetFailed):
		// stage0 said why, and removes the pod once we let go of it
		// (nw.end waits for that).
		log.Debug("pod stopped", "err", nerr, "wait", werr)
		return pod.ExitFailure, releaseLock()
	case nerr != nil:
		return 0, errors.Join(nerr, werr)
	}
	st, err := podunit.PodExit(pod.Stage1Rootfs, apps)
	if err != nil {
		return 0, errors.Join(err, werr)
	}
	return st, nil
}

// readyPoll is how often the loop looks for the ready marker (a stat),
// until it is there: whoever waits for READY=1 (the CRI's sandbox start)
// waits half of it on average.
const readyPoll = 2 * time.Millisecond

// loop drives a booted pod until Wait returns, and returns what it
// returned. The first signal asks for a clean poweroff (and tells the
// service manager the pod is stopping), a second kills the pod, as does a
// poweroff that could not be delivered. When notify (the service manager
// waits for readiness), the ready marker, written once every app has
// started (and has notified, for apps that support it), becomes READY=1.
// An error from net (the pod's network could not be attached, or its
// apps let start) stops the pod as a signal does.
func loop(log *slog.Logger, p Pod, sigs <-chan os.Signal, notify bool, readyFile string, net <-chan error) error {
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	var ready <-chan time.Time
	if notify {
		t := time.NewTicker(readyPoll)
		defer t.Stop()
		ready = t.C
	}
	stops := 0
	stop := func() {
		if stops++; stops > 1 {
			p.Kill()
			return
		}
		if notify {
			daemon.SdNotify(false, daemon.SdNotifyStopping)
		}
		go func() {
			if err := p.Poweroff(); err != nil {
				log.Warn("stop pod cleanly", "err", err)
				p.Kill()
			}
		}()
	}
	for {
		select {
		case err := <-done:
			return err
		case s := <-sigs:
			log.Debug("stop pod", "signal", s)
			stop()
		case err := <-net:
			net = nil
			if err != nil {
				log.Debug("stop pod", "err", err)
				stop()
			}
		case <-ready:
			if _, err := os.Stat(readyFile); err == nil {
				ready = nil
				if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
					log.Warn("notify ready", "err", err)
				}
			}
		}
	}
}
