// Package journal reads a pod's journal. Pods run journald inside; it keeps
// the journal in the pod's own tree, so the host needs no journald, no
// machined and no systemd as PID 1 to read it — only journalctl.
package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/skiffpod/skiff/pkg/pod"
)

// ErrNoJournal means the pod has not written a journal (yet).
var ErrNoJournal = errors.New("pod has no journal yet")

// Dir returns the directory of the pod's persistent journal.
func Dir(p *pod.Pod) (string, error) {
	d := p.File(filepath.Join(pod.Stage1Rootfs, "var/log/journal", pod.MachineID(p.UUID)))
	if _, err := os.Stat(d); err != nil {
		return "", fmt.Errorf("logs of pod %s: %w", p.UUID, ErrNoJournal)
	}
	return d, nil
}

// Options select what to show.
type Options struct {
	App    string // only this app's lines (journal identifier)
	Follow bool
	Lines  int    // last N lines; 0 = all
	Output string // journalctl output mode; "" = short
}

// Args returns the journalctl arguments that show the pod's logs.
func Args(dir string, o Options) []string {
	args := []string{"--directory=" + dir, "--no-pager", "--quiet"}
	if o.App != "" {
		args = append(args, "--identifier="+o.App)
	} else {
		// App lines carry the app name as identifier; leave out the pod's
		// own systemd chatter unless asked for with --app.
		args = append(args, "_TRANSPORT=stdout")
	}
	if o.Follow {
		args = append(args, "--follow")
	}
	if o.Lines > 0 {
		args = append(args, fmt.Sprintf("--lines=%d", o.Lines))
	}
	if o.Output != "" {
		args = append(args, "--output="+o.Output)
	}
	return args
}
