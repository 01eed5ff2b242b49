package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiffpod/skiff/pkg/build"
	"github.com/skiffpod/skiff/pkg/imageref"
	"github.com/skiffpod/skiff/pkg/oci"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/simplesign"
	"github.com/skiffpod/skiff/pkg/store"
)

// buildFlags are skiff build's flags; a spec file may say the same.
type buildFlags struct {
	specFile, execLine, user, name, output, lockFile, base, signKey string
	debs, paths, env, ports                                         []string
}

func newBuildCmd(g *globals) *cobra.Command {
	var bf buildFlags
	cmd := &cobra.Command{
		Use:   "build [-f SPEC] [--deb PKG]... [--path HOSTPATH[:IMAGEPATH]]... [--base IMAGE] [--exec \"CMD ARGS\"] [--user NAME] [--name NAME] -o OUTPUT",
		Short: "Build a microcontainer: one program, its libraries and nothing else, reproducibly (docs/build.md)",
		Long: `Build an image from Debian packages and host files holding the program to run,
the ELF closure of every program in it (interpreter and shared libraries,
resolved as the loader would, never by running ldd) and nothing else: no shell,
no package manager. Packages named with --deb keep their files (but docs, man
pages and locales); their dependencies give only the libraries needed.

OUTPUT is oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE,
aci:FILE or docker://REGISTRY/NAME:TAG. Equal inputs give equal bytes: entries
sorted, owners 0:0, mtimes SOURCE_DATE_EPOCH (or 0). The packages installed are
written to the lock file (--lock, else SPEC with .lock for its extension) and
pinned by the next build that finds it. The image's digest is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return bf.run(cmd.Context(), g) },
	}
	bf.register(cmd.Flags())
	return cmd
}

// register binds the flags to fs.
func (bf *buildFlags) register(f *pflag.FlagSet) {
	f.StringVarP(&bf.specFile, "file", "f", "", "the spec (YAML, docs/build.md)")
	f.StringArrayVar(&bf.debs, "deb", nil, "a Debian package to install (repeatable)")
	f.StringArrayVar(&bf.paths, "path", nil, "a host file or directory to add, HOSTPATH[:IMAGEPATH] (repeatable)")
	f.StringVar(&bf.execLine, "exec", "", `the command the image runs, "CMD ARGS" (quotes group words)`)
	f.StringVar(&bf.user, "user", "", "the user the image runs as (added to the generated /etc/passwd)")
	f.StringVar(&bf.base, "base", "", "an image in the store (name, reference or ID) whose rootfs the image starts from")
	f.StringVar(&bf.name, "name", "", "the image name (an ACI's name; a docker-archive's tag)")
	f.StringVarP(&bf.output, "output", "o", "", "where to write the image")
	f.StringVar(&bf.signKey, "sign-key", "", "an armored OpenPGP secret key file: sign an aci: output as FILE.asc, a docker:// push with a simple signing signature in the registry's lookaside")
	f.StringVar(&bf.lockFile, "lock", "", "the lock file: read to pin package versions if it exists, else written")
	f.StringArrayVar(&bf.env, "env", nil, "NAME=VALUE in the image's environment (repeatable)")
	f.StringArrayVar(&bf.ports, "port", nil, "PORT[/PROTO] the image exposes (repeatable)")
}

// run builds the image the flags and spec describe and writes it out.
func (bf *buildFlags) run(ctx context.Context, g *globals) error {
	s, specDir, err := bf.spec()
	if err != nil {
		return err
	}
	out, err := build.ParseOutput(s.Output)
	if err != nil {
		return usagef("build: %v", err)
	}
	if err := out.Check(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	signer, lookaside, err := bf.signer(g, out)
	if err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	lockFile, o, err := bf.options(g, s, specDir)
	if err != nil {
		return err
	}
	var pushOpts oci.Options
	if out.Ref.Transport == imageref.Docker {
		if pushOpts, err = g.registryOptions(out.Ref); err != nil {
			return fmt.Errorf("build: %w", err)
		}
		pushOpts.Mirrors = nil
	}
	start := time.Now()
	if s.Base != "" {
		// The base comes from the store, fetched (and verified) as
		// for run; its rootfs is extracted for the build's time.
		tmp, err := os.MkdirTemp("", "skiff-build-base-")
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		defer os.RemoveAll(tmp)
		o.BaseDir = filepath.Join(tmp, "rootfs")
		if err := withImage(g, s.Base, func(st *store.Store, id string) error {
			return st.Extract(ctx, id, o.BaseDir, store.Extraction{RootfsOnly: true})
		}); err != nil {
			return fmt.Errorf("build: base %s: %w (fetch it first with skiff fetch)", s.Base, err)
		}
	}
	r, err := build.Build(ctx, s, o)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	id, err := r.Image.Write(ctx, out, pushOpts, g.stderr)
	if err != nil {
		return fmt.Errorf("build: write %s: %w", s.Output, err)
	}
	switch {
	case signer != nil && out.ACI != "":
		if err := build.SignACI(out.ACI, signer); err != nil {
			os.Remove(out.ACI) // an unsigned ACI was not asked for
			return fmt.Errorf("build: %w", err)
		}
	case signer != nil:
		f, err := build.SignOCI(out.Ref, id, signer, lookaside)
		if err != nil {
			return fmt.Errorf("build: %s was pushed, not signed: %w", s.Output, err)
		}
		fmt.Fprintf(g.stderr, "signed %s (%s) with key %X: %s\n", s.Output, id, signer.PrimaryKey.Fingerprint, f)
	}
	if lockFile != "" && o.Lock == nil && r.Lock != nil {
		if err := safefile.WriteFile(lockFile, r.Lock.Bytes(), 0o644, false); err != nil {
			return fmt.Errorf("build: lock: %w", err)
		}
	}
	fmt.Fprintf(g.stderr, "built %s: %d entries, %d bytes of files, layer %d bytes gzipped, in %s\n",
		s.Output, r.Files, r.Size, len(r.Image.Layer), time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(g.stdout, id)
	return nil
}

// spec reads the spec file, if any, and lays the flags over it; specDir
// is what the spec's relative paths are relative to.
func (bf *buildFlags) spec() (s *build.Spec, specDir string, err error) {
	s, specDir = &build.Spec{}, "."
	if bf.specFile != "" {
		b, err := safefile.ReadFile(bf.specFile, 1<<20)
		if err != nil {
			return nil, "", fmt.Errorf("build: spec: %w", err)
		}
		if s, err = build.ParseSpec(b); err != nil {
			return nil, "", fmt.Errorf("build: %s: %w", bf.specFile, err)
		}
		specDir = filepath.Dir(bf.specFile)
	}
	s.Debs = append(s.Debs, bf.debs...)
	s.Paths = append(s.Paths, bf.paths...)
	s.Env = append(s.Env, bf.env...)
	s.Ports = append(s.Ports, bf.ports...)
	if bf.execLine != "" {
		words, err := build.SplitCommand(bf.execLine)
		if err != nil {
			return nil, "", usagef("build: --exec: %v", err)
		}
		s.Exec = words
	}
	s.User = cmp.Or(bf.user, s.User)
	s.Name = cmp.Or(bf.name, s.Name)
	s.Base = cmp.Or(bf.base, s.Base)
	if bf.output != "" {
		s.Output = bf.output
	} else if s.Output != "" && bf.specFile != "" {
		s.Output = relTo(specDir, s.Output)
	}
	if s.Output == "" {
		return nil, "", usagef("build: no output: give -o OUTPUT")
	}
	return s, specDir, nil
}

// signer reads --sign-key, for an ACI or a docker:// output; for the
// latter it also returns the lookaside its signature goes to
// (registries.d: the registry's lookaside-staging, else its lookaside,
// a file:// one).
func (bf *buildFlags) signer(g *globals, out build.Output) (signer *openpgp.Entity, lookaside string, err error) {
	if bf.signKey == "" {
		return nil, "", nil
	}
	switch {
	case out.ACI != "":
		if err := safefile.CheckOutput(out.ACI+".asc", false); err != nil {
			return nil, "", fmt.Errorf("build: %w", err)
		}
	case out.Ref.Transport == imageref.Docker:
		dir := filepath.Join(g.localConfig, simplesign.DirName)
		cfg, err := simplesign.Load(dir)
		if err != nil {
			return nil, "", fmt.Errorf("build: --sign-key: %w", err)
		}
		if lookaside = cfg.Staging(out.Ref); !strings.HasPrefix(lookaside, "file://") {
			return nil, "", fmt.Errorf("build: --sign-key: no file:// lookaside to write the signature of %s to (%q): set lookaside-staging, or a file:// lookaside, for its registry in %s (docs/build.md)", out.Ref, lookaside, dir)
		}
	default:
		return nil, "", usagef("build: --sign-key signs aci: and docker:// outputs: an OCI layout or archive has no place for a simple signing signature (push it with -o docker://REF)")
	}
	key, err := safefile.ReadFile(bf.signKey, 1<<20)
	if err != nil {
		return nil, "", fmt.Errorf("build: --sign-key: %w", err)
	}
	if signer, err = build.Signer(key); err != nil {
		return nil, "", fmt.Errorf("build: --sign-key %s: %w", bf.signKey, err)
	}
	return signer, lookaside, nil
}

// options returns the lock file (--lock, the spec's, else SPEC.lock) and
// the build's options: the lock it holds, if any, and SOURCE_DATE_EPOCH.
func (bf *buildFlags) options(g *globals, s *build.Spec, specDir string) (string, build.Options, error) {
	o := build.Options{Log: g.log}
	lockFile := bf.lockFile
	switch {
	case lockFile != "":
	case s.Lock != "":
		lockFile = relTo(specDir, s.Lock)
	case bf.specFile != "":
		lockFile = strings.TrimSuffix(bf.specFile, filepath.Ext(bf.specFile)) + ".lock"
	}
	if lockFile != "" {
		b, err := safefile.ReadFile(lockFile, 1<<20)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return "", o, fmt.Errorf("build: lock: %w", err)
		default:
			if o.Lock, err = build.ParseLock(b); err != nil {
				return "", o, fmt.Errorf("build: %s: %w", lockFile, err)
			}
		}
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		var err error
		if o.Epoch, err = strconv.ParseInt(e, 10, 64); err != nil || o.Epoch < 0 {
			return "", o, usagef("build: SOURCE_DATE_EPOCH=%q is not a number of seconds", e)
		}
	}
	return lockFile, o, nil
}

// relTo makes a path the spec names relative to the spec's directory.
func relTo(dir, p string) string {
	for _, t := range []string{"oci:", "oci-archive:", "docker-archive:", "aci:"} {
		if rest, ok := strings.CutPrefix(p, t); ok {
			return t + relTo(dir, rest)
		}
	}
	if filepath.IsAbs(p) || strings.Contains(p, "://") {
		return p
	}
	return filepath.Join(dir, p)
}
