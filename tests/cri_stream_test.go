//go:build e2e

package tests

import (
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/pty"
)

// lockedBuffer is a bytes.Buffer for a writer and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// typist is a terminal's keyboard: it types line once the output shows
// prompt, and then never ends (a terminal has no end of input).
type typist struct {
	out    *lockedBuffer
	prompt string
	line   string
	done   chan struct{}
	typed  bool
}

func (k *typist) Read(p []byte) (int, error) {
	for !k.typed {
		if strings.Contains(k.out.String(), k.prompt) {
			k.typed = true
			return copy(p, k.line), nil
		}
		select {
		case <-k.done:
			return 0, io.EOF
		case <-time.After(50 * time.Millisecond):
		}
	}
	<-k.done
	return 0, io.EOF
}

// onTerminal runs c on a new terminal of size rows x cols, typing line
// once its output shows prompt, and returns the output and Wait's error.
func onTerminal(t *testing.T, c *exec.Cmd, rows, cols uint16, prompt, line string) (string, error) {
	t.Helper()
	out := &lockedBuffer{}
	done := make(chan struct{})
	defer close(done)
	errc := make(chan error, 1)
	go func() {
		errc <- pty.Run(c, "/dev/ptmx", &typist{out: out, prompt: prompt, line: line, done: done}, out, pty.Size{Rows: rows, Cols: cols}, nil)
	}()
	select {
	case err := <-errc:
		return out.String(), err
	case <-time.After(2 * time.Minute):
		c.Process.Kill()
		t.Fatalf("%s on a terminal did not end; output:\n%s", c.Args, out.String())
		return "", nil
	}
}

// TestCRIStreams: exec with a TTY and attach through `skiff cri` on
// stage1-ns, as crictl does them (exec -it on a terminal; attach -i with
// a piped stdin, and an output-only attach beside it), and skiff enter -t.
func TestCRIStreams(t *testing.T) {
	img := busyboxOCI(t)
	e := newEnv(t)
	base := t.TempDir()
	srv := startCRI(t, e, filepath.Join(base, "cri.sock"))
	srv.must("pull", img)
	podJSON := writeJSONFile(t, base, "pod.json", podConfig("streams", filepath.Join(base, "logs"), 0))
	sb := srv.must("runp", podJSON)
	t.Cleanup(func() { srv.crictl("rmp", "-f", sb) })

	shJSON := writeJSONFile(t, base, "sh.json", map[string]any{
		"metadata": map[string]any{"name": "sh"},
		"image":    map[string]any{"image": img},
		"command":  []string{"/bin/sh"},
		"stdin":    true, "stdin_once": true,
		"log_path": "sh.log",
	})
	sh := srv.must("create", sb, shJSON, podJSON)
	srv.must("start", sh)

	t.Run("exec -it", func(t *testing.T) {
		// crictl passes its terminal's size on; the command has a terminal
		// of its own and reads the typed line from it.
		c := exec.Command(crictl(t), "--runtime-endpoint=unix://"+srv.sock, "exec", "-it", sh,
			"sh", "-c", `test -t 0 && test -t 1 && echo on-a-tty; stty size; echo ready; read x; echo "got $x"`)
		c.Env = []string{"CRI_CONFIG_FILE=/dev/null", "PATH=/usr/bin:/bin"}
		out, err := onTerminal(t, c, 33, 101, "ready", "hello\r")
		for _, want := range []string{"on-a-tty", "33 101", "got hello"} {
			if !strings.Contains(out, want) {
				t.Errorf("exec -it output lacks %q:\n%s", want, out)
			}
		}
		if err != nil {
			t.Errorf("exec -it: %v", err)
		}
	})

	t.Run("enter -t", func(t *testing.T) {
		c := exec.Command(skiffBin, "--dir="+e.dir, "--local-config="+e.config, "enter", "-t", "--app="+appOf("sh", sh), sb, "--",
			"sh", "-c", `test -t 0 && echo on-a-tty; stty size; exit 3`)
		out, err := onTerminal(t, c, 20, 70, "\x00never", "")
		if !strings.Contains(out, "on-a-tty") || !strings.Contains(out, "20 70") {
			t.Errorf("enter -t: output %q; want on-a-tty and 20 70", out)
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Errorf("enter -t: %v, want the command's exit status 3", err)
		}
		// Without -t, a command on a pipe has no terminal.
		if out, _, _ := e.run("enter", "--app="+appOf("sh", sh), sb, "--", "sh", "-c", "test -t 0 || echo no-tty"); strings.TrimSpace(out) != "no-tty" {
			t.Errorf("enter without -t: %q, want no-tty", out)
		}
	})

	t.Run("attach", func(t *testing.T) {
		// An output-only attach sees what the app writes from then on.
		watch := exec.Command(crictl(t), "--runtime-endpoint=unix://"+srv.sock, "attach", sh)
		watch.Env = []string{"CRI_CONFIG_FILE=/dev/null"}
		var wout, werr lockedBuffer
		watch.Stdout, watch.Stderr = &wout, &werr
		if err := watch.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // attached
		c := exec.Command(crictl(t), "--runtime-endpoint=unix://"+srv.sock, "attach", "-i", sh)
		c.Env = []string{"CRI_CONFIG_FILE=/dev/null"}
		c.Stdin = strings.NewReader("echo -n hello; echo oops >&2; echo\n")
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		// stdin_once: the end of this attach's stdin ends the shell's,
		// and the shell ends; so do both attaches.
		if err := c.Run(); err != nil {
			t.Fatalf("attach -i: %v\n%s%s", err, &out, &errb)
		}
		if out.String() != "hello\n" || !strings.Contains(errb.String(), "oops") {
			t.Errorf("attach -i: stdout %q, stderr %q; want hello, oops", out.String(), errb.String())
		}
		waitErr := make(chan error, 1)
		go func() { waitErr <- watch.Wait() }()
		select {
		case <-waitErr:
		case <-time.After(time.Minute):
			watch.Process.Kill()
			t.Errorf("the output-only attach did not end with the app")
		}
		if !strings.Contains(wout.String(), "hello") || !strings.Contains(werr.String(), "oops") {
			t.Errorf("output-only attach: stdout %q, stderr %q", wout.String(), werr.String())
		}
		waitFor(t, "the shell to exit", time.Minute, func() bool {
			out, _, _ := srv.crictl("inspect", "-o", "go-template", "--template", "{{.status.state}} {{.status.exitCode}}", sh)
			return out == "CONTAINER_EXITED 0"
		})
		// The journal still has the output: the container's log.
		waitFor(t, "the log", time.Minute, func() bool {
			out, _, _ := srv.crictl("logs", sh)
			return strings.Contains(out, "hello")
		})
	})

	t.Run("refused", func(t *testing.T) {
		plainJSON := writeJSONFile(t, base, "plain.json", map[string]any{
			"metadata": map[string]any{"name": "plain"},
			"image":    map[string]any{"image": img},
			"command":  []string{"sleep", "1000"},
			"log_path": "plain.log",
		})
		plain := srv.must("create", sb, plainJSON, podJSON)
		srv.must("start", plain)
		srv.fails("FailedPrecondition", "attach", plain)    // no stdin
		srv.fails("FailedPrecondition", "attach", "-i", sh) // exited
		if _, errs, code := e.run("attach", "--app="+appOf("plain", plain), sb); code != 254 || !strings.Contains(errs, "stdin") {
			t.Errorf("skiff attach to an app without stdin: exit %d, %q", code, errs)
		}
	})
}

// appOf returns the skiff app of CRI container id named name
// (docs/kubernetes.md: the name and the ID's first 8 digits).
func appOf(name, id string) string { return name + "-" + id[:8] }
