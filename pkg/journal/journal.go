// Package journal reads a pod's journal, and connects an app's output to
// it (Stream). Pods run journald inside; it keeps
// the journal in the pod's own tree, so the host needs no journald, no
// machined and no systemd as PID 1 to read it — only journalctl.
package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// ErrNoJournal means the pod has not written a journal (yet).
var ErrNoJournal = errors.New("pod has no journal yet")

// ErrTooManyFiles means the pod's journal dir holds more files than Open
// hands to journalctl.
var ErrTooManyFiles = errors.New("too many journal files")

// maxFiles bounds the journal files Open opens (journald keeps far fewer
// under the pod's journal size cap).
const maxFiles = 1000

// Open opens the pod's journal files: the regular files named *.journal or
// *.journal~ directly in the pod's persistent journal dir. A pod writes
// that dir (a KVM guest's root writes it over 9p), so it is reached from
// the pod dir following no symlink, and entries that are not regular files
// are left out: journalctl itself would follow a symlinked file or
// machine-id dir to anywhere on the host. The caller closes the files.
func Open(p *pod.Pod) ([]*os.File, error) {
	rel := filepath.Join(pod.Stage1Rootfs, "var/log/journal", pod.MachineID(p.UUID))
	root, err := unix.Open(p.Path(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("logs of pod %s: %w", p.UUID, err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("logs of pod %s: %w", p.UUID, ErrNoJournal)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		err = safefile.ErrSymlink
	}
	if err != nil {
		return nil, fmt.Errorf("logs of pod %s: open %s: %w", p.UUID, rel, err)
	}
	dir := os.NewFile(uintptr(fd), p.File(rel))
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("logs of pod %s: %w", p.UUID, err)
	}
	slices.Sort(names)
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, name := range names {
		if !strings.HasSuffix(name, ".journal") && !strings.HasSuffix(name, ".journal~") {
			continue
		}
		f, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
			continue // a symlink; or rotated away meanwhile
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("logs of pod %s: open %s: %w", p.UUID, name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(f, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(f)
			continue
		}
		if len(files) == maxFiles {
			unix.Close(f)
			closeAll()
			return nil, fmt.Errorf("logs of pod %s: %w (more than %d)", p.UUID, ErrTooManyFiles, maxFiles)
		}
		files = append(files, os.NewFile(uintptr(f), filepath.Join(dir.Name(), name)))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("logs of pod %s: %w", p.UUID, ErrNoJournal)
	}
	return files, nil
}

// Options select what to show.
type Options struct {
	App    string // only this app's lines (journal identifier)
	Follow bool
	Lines  int    // last N lines; 0 = all
	Output string // journalctl output mode; "" = short
}

// Args returns the journalctl arguments that show the pod's logs from
// files journal files inherited as fds 3, 4, ... (exec.Cmd's ExtraFiles).
func Args(files int, o Options) []string {
	args := []string{"--no-pager", "--quiet"}
	for i := range files {
		args = append(args, fmt.Sprintf("--file=/proc/self/fd/%d", 3+i))
	}
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
