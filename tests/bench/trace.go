package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// event is one moment of a traced run: a process exec'd a program
// ("exec PATH ARGS"), a process that had exec'd PATH exited ("exit PATH"),
// or the run printed a line ("out LINE").
type event struct {
	at   time.Time
	text string
}

// phase is one stage of a run; it ends at the first event after the end
// of the previous phase whose text matches end.
type phase struct {
	name string
	end  *regexp.Regexp
}

// traceRun runs name args once under strace (execve only, filtered in
// the kernel with --seccomp-bpf to keep the overhead low) and returns its
// exec and exit events merged with its timestamped output lines. Both
// clocks are the wall clock.
func traceRun(ctx context.Context, scratch string, env []string, name string, args ...string) ([]event, error) {
	log := filepath.Join(scratch, "strace.log")
	cmd, cancel := command(ctx, env, "strace", append([]string{"-f", "-q", "--seccomp-bpf", "-ttt",
		"-e", "trace=execve", "-e", "signal=none", "-o", log, name}, args...)...)
	defer cancel()
	out := new(lineStamper)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("traced run: %w\n%s", err, tail(strings.Join(out.lines(), "\n")))
	}
	f, err := os.Open(log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	evs, err := parseStrace(f)
	if err != nil {
		return nil, err
	}
	evs = append(evs, out.events...)
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	return evs, nil
}

var (
	straceExec = regexp.MustCompile(`^(\d+) +(\d+\.\d+) execve\("([^"]*)", \[(.*?)\]`)
	straceExit = regexp.MustCompile(`^(\d+) +(\d+\.\d+) \+\+\+ (?:exited|killed)`)
	// A thread other than the leader exec'd; the process keeps the
	// leader's pid, and its exit is reported under that.
	straceSuperseded = regexp.MustCompile(`^(\d+) +\S+ \+\+\+ superseded by execve in pid (\d+)`)
)

// parseStrace reads `strace -f -ttt -e trace=execve` output. Failed execs
// (a PATH search) are dropped; exits are kept only for processes that
// exec'd something, named by what they exec'd last.
func parseStrace(r io.Reader) ([]event, error) {
	var evs []event
	progs := map[string]string{} // pid → last program exec'd
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := straceExec.FindStringSubmatch(line); m != nil && !strings.Contains(line, ") = -1 ") {
			at, err := epoch(m[2])
			if err != nil {
				return nil, err
			}
			progs[m[1]] = m[3]
			argv := strings.ReplaceAll(m[4], `"`, "")
			evs = append(evs, event{at, "exec " + m[3] + " " + argv})
		} else if m := straceExit.FindStringSubmatch(line); m != nil && progs[m[1]] != "" {
			at, err := epoch(m[2])
			if err != nil {
				return nil, err
			}
			evs = append(evs, event{at, "exit " + progs[m[1]]})
		} else if m := straceSuperseded.FindStringSubmatch(line); m != nil {
			progs[m[1]] = progs[m[2]]
		}
	}
	return evs, sc.Err()
}

// epoch parses strace's -ttt "seconds.micros".
func epoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	a, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse strace time %q: %w", s, err)
	}
	b, err := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse strace time %q: %w", s, err)
	}
	return time.Unix(a, b*1000), nil
}

// printBreakdown splits the run into phases, from its first event (skiff's
// exec); a phase whose end was not seen is reported and skipped.
func printBreakdown(w io.Writer, title string, evs []event, phases []phase) {
	fmt.Fprintf(w, "\n%s\n", title)
	if len(evs) == 0 {
		fmt.Fprintln(w, "  (no events)")
		return
	}
	start, prev, i := evs[0].at, evs[0].at, 0
	for _, p := range phases {
		j := slices.IndexFunc(evs[i:], func(e event) bool { return p.end.MatchString(e.text) })
		if j < 0 {
			fmt.Fprintf(w, "  %-58s   (end not seen: /%s/)\n", p.name, p.end)
			continue
		}
		i += j
		fmt.Fprintf(w, "  %-58s %9s   (at %s)\n", p.name, ms(evs[i].at.Sub(prev)), ms(evs[i].at.Sub(start)))
		prev = evs[i].at
	}
}

// lineStamper collects written output as lines, each stamped with the time
// its end arrived. Safe for concurrent use.
type lineStamper struct {
	mu     sync.Mutex
	buf    []byte
	events []event
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

func (l *lineStamper) Write(p []byte) (int, error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := ansi.ReplaceAllString(strings.TrimRight(string(l.buf[:i]), "\r"), "")
		l.events = append(l.events, event{now, "out " + line})
		l.buf = l.buf[i+1:]
	}
}

func (l *lineStamper) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, e := range l.events {
		s = append(s, e.text)
	}
	return s
}
