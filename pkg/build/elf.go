package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// closure is the ELF closure of programs: the programs themselves, their
// interpreter and every shared library they need, transitively, with the
// symlinks met on the way. Libraries are searched as the dynamic loader
// would (ld.so(8)): DT_RPATH (when there is no DT_RUNPATH), DT_RUNPATH,
// the image's ld.so.conf directories, then the loader's default paths,
// with $ORIGIN expanded. A file must have the class and machine of the
// program to match. Everything is looked up in the tree, never on the
// host, and nothing is run (no ldd). A program that is not ELF (a
// script) adds only itself. extra returns the ld.so.conf directories
// that served a library: without an ld.so.cache in the image the loader
// will only find those through LD_LIBRARY_PATH.
func (t tree) closure(programs []string) (files map[string]bool, extra []string, err error) {
	files = map[string]bool{}
	conf := t.ldConf()
	done := map[string]bool{}
	extraSet := map[string]bool{}
	type job struct {
		file  string // resolved
		prog  string // the program it serves, for errors
		rpath []string
	}
	var queue []job
	add := func(p, prog string, rpath []string) error {
		real, links, err := t.resolve(p)
		if err != nil {
			return err
		}
		for _, l := range links {
			files[l] = true
		}
		if n := t[real]; n == nil || n.typ != tar.TypeReg {
			return fmt.Errorf("%s is not a regular file", p)
		}
		files[real] = true
		if !done[real] {
			done[real] = true
			queue = append(queue, job{real, prog, rpath})
		}
		return nil
	}
	for _, p := range programs {
		if err := add(p, p, nil); err != nil {
			return nil, nil, fmt.Errorf("program %s: %w", p, err)
		}
	}
	for len(queue) > 0 {
		j := queue[0]
		queue = queue[1:]
		f, closeF, err := t.openELF(j.file)
		if errors.Is(err, errNotELF) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", j.file, err)
		}
		interp, needed, rpath, runpath, err := dynInfo(f)
		if err != nil {
			closeF()
			return nil, nil, fmt.Errorf("%s: %w", j.file, err)
		}
		origin := "/" + path.Dir(j.file)
		expand := func(dirs []string) []string {
			var out []string
			for _, d := range dirs {
				for _, e := range strings.Split(d, ":") {
					e = strings.ReplaceAll(strings.ReplaceAll(e, "${ORIGIN}", origin), "$ORIGIN", origin)
					if e != "" {
						out = append(out, e)
					}
				}
			}
			return out
		}
		if interp != "" {
			if err := add(interp, j.prog, nil); err != nil {
				closeF()
				return nil, nil, fmt.Errorf("%w: %s needs its interpreter %s (%v)", ErrMissingLibrary, j.prog, interp, err)
			}
		}
		// DT_RPATH applies to the object's own needs and, inherited, to
		// those of what it loads; DT_RUNPATH only to its own and turns
		// DT_RPATH off.
		inherited := append(expand(rpath), j.rpath...)
		var search []string
		if len(runpath) == 0 {
			search = append(search, inherited...)
		} else {
			inherited = nil
		}
		search = append(search, expand(runpath)...)
		nConf := len(search)
		search = append(search, conf...)
		nDefault := len(search)
		search = append(search, defaultLibDirs(f.Machine)...)
		for _, lib := range needed {
			var cands []string
			if strings.Contains(lib, "/") {
				cands = []string{lib}
			} else {
				for _, d := range search {
					cands = append(cands, path.Join(d, lib))
				}
			}
			found := false
			for i, c := range cands {
				real, _, err := t.resolve(c)
				if err != nil || !t.matches(real, f) {
					continue
				}
				if err := add(c, j.prog, inherited); err != nil {
					closeF()
					return nil, nil, err
				}
				if i >= nConf && i < nDefault && !strings.Contains(lib, "/") {
					extraSet[search[i]] = true
				}
				found = true
				break
			}
			if !found {
				closeF()
				return nil, nil, fmt.Errorf("%w: %s needs %s (wanted by /%s), found in none of %s", ErrMissingLibrary, j.prog, lib, j.file, strings.Join(uniq(search), ":"))
			}
		}
		closeF()
	}
	for d := range extraSet {
		extra = append(extra, d)
	}
	sort.Strings(extra)
	return files, extra, nil
}

var errNotELF = errors.New("not ELF")

// recoverELF turns a panic of debug/elf on a malformed file (it has had
// such bugs) into an error: a hostile package or base image must not
// crash the build.
func recoverELF(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("malformed ELF file: %v", r)
	}
}

// openELF opens the tree's regular file p as ELF; done closes it.
func (t tree) openELF(p string) (f *elf.File, done func(), err error) {
	defer recoverELF(&err)
	n := t[p]
	if n.src == "" {
		if !bytes.HasPrefix(n.data, []byte(elf.ELFMAG)) {
			return nil, nil, errNotELF
		}
		f, err := elf.NewFile(bytes.NewReader(n.data))
		return f, func() {}, err
	}
	fh, err := n.open()
	if err != nil {
		return nil, nil, err
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(fh, b); err != nil || string(b) != elf.ELFMAG {
		fh.Close()
		return nil, nil, errNotELF
	}
	if f, err = elf.NewFile(fh); err != nil {
		fh.Close()
		return nil, nil, err
	}
	return f, func() { fh.Close() }, nil
}

// matches reports whether p is an ELF file loadable beside f.
func (t tree) matches(p string, f *elf.File) bool {
	n := t[p]
	if n == nil || n.typ != tar.TypeReg {
		return false
	}
	g, done, err := t.openELF(p)
	if err != nil {
		return false
	}
	defer done()
	return g.Class == f.Class && g.Machine == f.Machine
}

// dynInfo reads the interpreter and the dynamic section of f.
func dynInfo(f *elf.File) (interp string, needed, rpath, runpath []string, err error) {
	defer recoverELF(&err)
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
			if err != nil {
				return "", nil, nil, nil, err
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if f.Section(".dynamic") == nil && f.SectionByType(elf.SHT_DYNAMIC) == nil {
		return interp, nil, nil, nil, nil // static
	}
	if needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return "", nil, nil, nil, err
	}
	if rpath, err = f.DynString(elf.DT_RPATH); err != nil {
		return "", nil, nil, nil, err
	}
	if runpath, err = f.DynString(elf.DT_RUNPATH); err != nil {
		return "", nil, nil, nil, err
	}
	return interp, needed, rpath, runpath, nil
}

// defaultLibDirs are the loader's built-in search path (Debian's glibc:
// the multiarch directories, then /lib and /usr/lib).
func defaultLibDirs(m elf.Machine) []string {
	triplet := map[elf.Machine]string{elf.EM_X86_64: "x86_64-linux-gnu", elf.EM_AARCH64: "aarch64-linux-gnu",
		elf.EM_386: "i386-linux-gnu", elf.EM_RISCV: "riscv64-linux-gnu"}[m]
	var dirs []string
	if triplet != "" {
		dirs = append(dirs, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	return append(dirs, "/lib", "/usr/lib")
}

// ldConf lists the directories of the image's /etc/ld.so.conf and the
// files it includes; without ld.so.conf, those of /etc/ld.so.conf.d/*.conf
// (Debian's libc6 ships the directory, libc-bin the file).
func (t tree) ldConf() []string {
	var dirs []string
	seen := map[string]bool{}
	var read func(p string, depth int)
	read = func(p string, depth int) {
		if depth > 8 || seen[p] {
			return
		}
		seen[p] = true
		real, _, err := t.resolve(p)
		if err != nil || t[real] == nil || t[real].typ != tar.TypeReg {
			return
		}
		b, err := t.read(real, 1<<20)
		if err != nil {
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			l, _, _ := strings.Cut(sc.Text(), "#")
			l = strings.TrimSpace(l)
			if inc, ok := strings.CutPrefix(l, "include"); ok && (strings.HasPrefix(inc, " ") || strings.HasPrefix(inc, "\t")) {
				for _, g := range strings.Fields(inc) {
					if !path.IsAbs(g) {
						g = path.Join(path.Dir("/"+p), g)
					}
					for _, m := range t.glob(g) {
						read(m, depth+1)
					}
				}
				continue
			}
			for _, d := range strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' || r == ':' || r == ',' }) {
				if path.IsAbs(d) {
					dirs = append(dirs, path.Clean(d))
				}
			}
		}
	}
	if _, ok := t["etc/ld.so.conf"]; ok {
		read("etc/ld.so.conf", 0)
	} else {
		for _, m := range t.glob("/etc/ld.so.conf.d/*.conf") {
			read(m, 0)
		}
	}
	return uniq(dirs)
}

// glob matches an absolute pattern against the tree's paths, sorted.
func (t tree) glob(pattern string) []string {
	pattern = clean(pattern)
	var out []string
	for p := range t {
		if ok, _ := path.Match(pattern, p); ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// read returns the content of the tree's regular file p, at most limit bytes.
func (t tree) read(p string, limit int64) ([]byte, error) {
	n := t[p]
	if n.src == "" {
		return n.data, nil
	}
	f, err := n.open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
