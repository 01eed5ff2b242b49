package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

var errNoModule = errors.New("module not found")

type module struct{ name, path string }

// loadOrder returns roots and all their dependencies, each after what it
// depends on. The Debian package ships no modules.dep (depmod runs at
// install time), so dependencies come from each module's .modinfo section.
func loadOrder(modDir string, roots []string) ([]module, error) {
	paths := map[string]string{}
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			paths[modName(strings.TrimSuffix(d.Name(), ".ko"))] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var order []module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = modName(name)
		switch state[name] {
		case 1:
			return fmt.Errorf("dependency cycle at %q", name)
		case 2:
			return nil
		}
		p, ok := paths[name]
		if !ok {
			return fmt.Errorf("%q: %w", name, errNoModule)
		}
		state[name] = 1
		deps, err := modDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, module{name: name, path: p})
		return nil
	}
	for _, r := range roots {
		if r = strings.TrimSpace(r); r != "" {
			if err := visit(r); err != nil {
				return nil, err
			}
		}
	}
	return order, nil
}

// modName normalises a module name the way the kernel does ('-' == '_').
func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func modDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open module: %w", err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %q has no .modinfo", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo of %q: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}
