package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// cmdTimeout bounds every command: a hung pod fails the benchmark instead
// of stalling it.
const cmdTimeout = 3 * time.Minute

// contender is one thing being timed; once performs one run and returns
// how long the part being measured took (setup and cleanup excluded).
type contender struct {
	name string
	once func() (time.Duration, error)
}

// interleave runs every contender n times in turn (A B C A B C ...), so
// that drift in the machine's load hits all of them alike.
func interleave(n int, cs []contender) ([][]time.Duration, error) {
	got := make([][]time.Duration, len(cs))
	for i := range n {
		for j, c := range cs {
			d, err := c.once()
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", c.name, i+1, err)
			}
			got[j] = append(got[j], d)
		}
	}
	return got, nil
}

// summary is the spread of one contender's runs.
type summary struct{ p10, median, p90 time.Duration }

func summarize(ds []time.Duration) summary {
	s := slices.Clone(ds)
	slices.Sort(s)
	return summary{quantile(s, 0.1), quantile(s, 0.5), quantile(s, 0.9)}
}

// quantile interpolates linearly between the closest ranks of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + time.Duration((pos-float64(lo))*float64(s[lo+1]-s[lo]))
}

// printTable prints one row per contender, with each median as a multiple
// of the median of row ref, and returns the summaries.
func printTable(w io.Writer, title string, cs []contender, runs [][]time.Duration, ref int) []summary {
	sums := make([]summary, len(runs))
	for i, r := range runs {
		sums[i] = summarize(r)
	}
	fmt.Fprintf(w, "\n%s (%d runs each, interleaved)\n", title, len(runs[0]))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tmedian\tp10\tp90\t× %s\t\n", "", cs[ref].name)
	for i, s := range sums {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t\n", cs[i].name, ms(s.median), ms(s.p10), ms(s.p90), ratio(s.median, sums[ref].median))
	}
	tw.Flush()
	return sums
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// ms formats d in milliseconds, with one decimal below 100 ms.
func ms(d time.Duration) string {
	if d < 100*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

// timed runs cmd to completion and returns the time from just before it
// is started until it has been waited for; the error carries its output.
func timed(cmd *exec.Cmd) (time.Duration, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail(out.String()))
	}
	return d, nil
}

// command is exec.CommandContext bounded by cmdTimeout, with env added to
// the harness's environment. The caller calls the returned cancel func.
func command(ctx context.Context, env []string, name string, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	// On timeout, first ask for a clean stop: skiff's stage1 then shuts
	// its pod down instead of leaving nspawn or qemu behind.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	return cmd, cancel
}

// timeCmd times one run of name args.
func timeCmd(ctx context.Context, env []string, name string, args ...string) (time.Duration, error) {
	cmd, cancel := command(ctx, env, name, args...)
	defer cancel()
	return timed(cmd)
}

// output runs an untimed setup or cleanup command and returns its stdout.
func output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd, cancel := command(ctx, env, name, args...)
	defer cancel()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail(stderr.String()))
	}
	return string(out), nil
}

// tail keeps the last lines of a command's output for an error message.
func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// needTools fails with the package to install for the first missing tool.
func needTools(tools map[string]string) error {
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: apt-get install -y %s (or make deps)", tool, pkg)
		}
	}
	return nil
}
