package build

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Package is one Debian package of a build, as the lock file records it.
type Package struct {
	Name, Version string
}

// Lock is the package set of a build: "NAME VERSION" lines, sorted.
type Lock []Package

// ParseLock reads a lock file.
func ParseLock(b []byte) (Lock, error) {
	var l Lock
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || !debName().MatchString(f[0]) || !debVersion().MatchString(f[1]) {
			return nil, fmt.Errorf("lock line %d: %q is not NAME VERSION", n, line)
		}
		l = append(l, Package{f[0], f[1]})
	}
	return l, nil
}

// Bytes is the lock file's content.
func (l Lock) Bytes() []byte {
	var b bytes.Buffer
	b.WriteString("# skiff build: the Debian packages of this image; a build with this file installs exactly these\n")
	for _, p := range l {
		fmt.Fprintf(&b, "%s %s\n", p.Name, p.Version)
	}
	return b.Bytes()
}

var (
	debVersion = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9][A-Za-z0-9.+~:-]*$`) })
	instLine   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Inst (\S+) \((\S+) `) })
)

// resolvePackages returns the packages to install for debs: with
// depends, the closure of their Depends and Pre-Depends as apt computes
// it for an empty system (no Recommends); without, the packages alone.
func resolvePackages(ctx context.Context, debs []string, depends bool) (Lock, error) {
	args := []string{"-s", "-q", "install", "--no-install-recommends", "-o", "Dir::State::status=/dev/null", "-o", "APT::Get::Show-Versions=false"}
	out, err := apt(ctx, "", "apt-get", append(args, debs...)...)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, d := range debs {
		want[strings.SplitN(d, "=", 2)[0]] = true
	}
	var l Lock
	for _, line := range strings.Split(out, "\n") {
		m := instLine().FindStringSubmatch(line)
		if m == nil || (!depends && !want[m[1]]) {
			continue
		}
		l = append(l, Package{m[1], m[2]})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	return l, nil
}

// download fetches the packages of l, at their versions, into dir and
// unpacks each with dpkg-deb -x into dir/root/NAME; it returns those
// directories by package name.
func download(ctx context.Context, l Lock, dir string) (map[string]string, error) {
	debs := filepath.Join(dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	// apt drops privileges to _apt for downloads when it can write there.
	os.Chown(debs, aptUID(), -1)
	var args []string
	for _, p := range l {
		args = append(args, p.Name+"="+p.Version)
	}
	if _, err := apt(ctx, debs, "apt-get", append([]string{"-q", "download"}, args...)...); err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil {
		return nil, err
	}
	roots := map[string]string{}
	for _, f := range files {
		out, err := exec.CommandContext(ctx, "dpkg-deb", "--showformat=${Package} ${Version}", "-W", f).Output()
		if err != nil {
			return nil, fmt.Errorf("%w: dpkg-deb -W %s: %v", ErrApt, filepath.Base(f), err)
		}
		name, _, _ := strings.Cut(string(out), " ")
		root := filepath.Join(dir, "root", name)
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", f, root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%w: dpkg-deb -x %s: %v: %s", ErrApt, filepath.Base(f), err, firstLine(string(out)))
		}
		roots[name] = root
	}
	for _, p := range l {
		if roots[p.Name] == "" {
			return nil, fmt.Errorf("%w: apt-get download gave no %s", ErrApt, p.Name)
		}
	}
	return roots, nil
}

func aptUID() int {
	b, _ := os.ReadFile("/etc/passwd")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[0] == "_apt" {
			var uid int
			fmt.Sscan(f[2], &uid)
			return uid
		}
	}
	return -1
}

// apt runs an apt command in dir; its error is apt's own "E:" lines.
func apt(ctx context.Context, dir, name string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		var msgs []string
		for _, l := range strings.Split(errb.String()+out.String(), "\n") {
			if m, ok := strings.CutPrefix(l, "E: "); ok {
				msgs = append(msgs, m)
			}
		}
		if len(msgs) == 0 {
			msgs = []string{err.Error()}
		}
		return "", fmt.Errorf("%w: %s: %s", ErrApt, name, strings.Join(msgs, "; "))
	}
	return out.String(), nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
