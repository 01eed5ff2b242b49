package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiffpod/skiff/pkg/policy"
	"github.com/skiffpod/skiff/pkg/stage1"
	"github.com/skiffpod/skiff/pkg/trust"
)

// configInfo is what `skiff config` prints: where skiff keeps things and
// what its configuration files say, never a credential.
type configInfo struct {
	Dir             string             `json:"dir"`
	LocalConfig     string             `json:"localConfig"`
	InsecureOptions []string           `json:"insecureOptions"`
	AuthFiles       []string           `json:"authFiles"`  // searched in order; contents never shown
	PolicyFile      string             `json:"policyFile"` // "" for the default policy
	TrustedKeys     []trustedKey       `json:"trustedKeys"`
	Registries      []registryInfo     `json:"registries"`
	Aliases         map[string]string  `json:"aliases,omitempty"`
	Networks        []networkInfo      `json:"networks"`
	Stage1          []stage1.Installed `json:"stage1"`
}

type trustedKey struct {
	Prefix      string `json:"prefix"` // "" for a root key
	Fingerprint string `json:"fingerprint"`
}

type registryInfo struct {
	Location string   `json:"location"`
	Insecure bool     `json:"insecure,omitempty"`
	NoVerify bool     `json:"tlsVerifyOff,omitempty"`
	Blocked  bool     `json:"blocked,omitempty"`
	Mirrors  []string `json:"mirrors,omitempty"`
}

func newConfigCmd(g *globals) *cobra.Command {
	var f format
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the configuration in effect: dirs, trusted keys, registries, networks, stage1 images",
		Long: `Print the configuration in effect, as rkt's config: the data and local config
dirs, the insecure options, the auth files searched (never their contents),
the run policy file, the trusted keys' prefixes and fingerprints, the
registries and aliases of registries.conf, the networks and the stage1 image
of each short --stage1 name. --format=json for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			c, err := effectiveConfig(g)
			if err != nil {
				return err
			}
			if f.isJSON() {
				return f.write(g.stdout, c)
			}
			return c.print(g.stdout)
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func effectiveConfig(g *globals) (configInfo, error) {
	c := configInfo{
		Dir: g.dir, LocalConfig: g.localConfig, InsecureOptions: []string{}, AuthFiles: g.authFiles(),
		TrustedKeys: []trustedKey{}, Registries: []registryInfo{}, Networks: []networkInfo{},
		Stage1: stage1.List(stage1.DefaultDirs()),
	}
	for _, o := range g.insecure {
		c.InsecureOptions = append(c.InsecureOptions, strings.Split(o, ",")...)
	}
	if _, err := policy.Load(g.localConfig); err != nil {
		return c, err // a configuration that would not run is no configuration to show
	}
	if p := filepath.Join(g.localConfig, policy.FileName); exists(p) {
		c.PolicyFile = p
	}
	keys, err := trust.Open(g.localConfig).List()
	if err != nil {
		return c, err
	}
	for _, k := range keys {
		c.TrustedKeys = append(c.TrustedKeys, trustedKey{Prefix: k.Prefix, Fingerprint: k.Fingerprint})
	}
	regs, err := g.registries()
	if err != nil {
		return c, err
	}
	for _, r := range regs.Registries {
		ri := registryInfo{Location: r.Location, Insecure: r.Insecure, NoVerify: r.TLSVerify != nil && !*r.TLSVerify, Blocked: r.Blocked}
		for _, m := range r.Mirrors {
			ri.Mirrors = append(ri.Mirrors, m.Location)
		}
		c.Registries = append(c.Registries, ri)
	}
	c.Aliases = regs.Aliases
	nets, _, err := networks(g)
	if err != nil {
		return c, err
	}
	for _, name := range slices.Sorted(maps.Keys(nets)) {
		n := nets[name]
		c.Networks = append(c.Networks, networkInfo{Name: n.Name, File: n.File, Bridge: n.Bridge(), Subnets: n.Subnets})
	}
	if c.Stage1 == nil {
		c.Stage1 = []stage1.Installed{}
	}
	return c, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// print writes the configuration for people: one "key value" line per
// setting, as version's lines.
func (c configInfo) print(w io.Writer) error {
	fmt.Fprintf(w, "dir %s\n", c.Dir)
	fmt.Fprintf(w, "local-config %s\n", c.LocalConfig)
	fmt.Fprintf(w, "insecure-options %s\n", cmp.Or(strings.Join(c.InsecureOptions, ","), "none"))
	fmt.Fprintf(w, "auth-files %s\n", strings.Join(c.AuthFiles, " "))
	fmt.Fprintf(w, "policy %s\n", cmp.Or(c.PolicyFile, "(default)"))
	for _, k := range c.TrustedKeys {
		fmt.Fprintf(w, "trusted-key %s %s\n", cmp.Or(k.Prefix, "(root)"), k.Fingerprint)
	}
	for _, r := range c.Registries {
		var opts []string
		for _, o := range []struct {
			on   bool
			word string
		}{{r.Insecure, "insecure"}, {r.NoVerify, "tls-verify=false"}, {r.Blocked, "blocked"}} {
			if o.on {
				opts = append(opts, o.word)
			}
		}
		for _, m := range r.Mirrors {
			opts = append(opts, "mirror="+m)
		}
		fmt.Fprintln(w, strings.TrimSpace("registry "+r.Location+" "+strings.Join(opts, " ")))
	}
	for _, a := range slices.Sorted(maps.Keys(c.Aliases)) {
		fmt.Fprintf(w, "alias %s=%s\n", a, c.Aliases[a])
	}
	for _, n := range c.Networks {
		fmt.Fprintf(w, "network %s %s %s %s\n", n.Name, cmp.Or(n.Bridge, "-"), prefixes(n.Subnets), cmp.Or(n.File, "(built-in)"))
	}
	for _, s := range c.Stage1 {
		if s.Err != "" {
			fmt.Fprintf(w, "stage1 %s: %s (unusable: %s)\n", s.Name, s.Path, s.Err)
			continue
		}
		fmt.Fprintf(w, "stage1 %s: %s version %s, interface %d, %s\n", s.Name, s.Image, s.Version, s.Interface, s.Path)
	}
	return nil
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return cmp.Or(strings.Join(s, ","), "-")
}
