package tests

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// These guardrails are plain unit tests (no build tag, no root): they read
// the source tree and hold it to the rules of DESIGN.md and STYLE.md.

// goPackage is one directory of Go source as the guardrails see it.
type goPackage struct {
	name    string              // package clause of the non-test files; "" if only tests
	doc     bool                // some non-test file has a package doc comment
	imports map[string][]string // module-relative dir imported -> files importing it
}

// readTree parses the package clause, doc comment and imports of every Go
// file of the module, by module-relative directory.
func readTree(t *testing.T) map[string]*goPackage {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	mod, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]*goPackage{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		p := pkgs[dir]
		if p == nil {
			p = &goPackage{imports: map[string][]string{}}
			pkgs[dir] = p
		}
		rel, _ := filepath.Rel(root, path)
		if !strings.HasSuffix(name, "_test.go") {
			p.name = f.Name.Name
			p.doc = p.doc || f.Doc != nil
		}
		for _, im := range f.Imports {
			ip, _ := strconv.Unquote(im.Path.Value)
			if ip == mod || strings.HasPrefix(ip, mod+"/") {
				d := strings.TrimPrefix(strings.TrimPrefix(ip, mod), "/")
				if d == "" {
					d = "."
				}
				p.imports[d] = append(p.imports[d], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", os.ErrNotExist
}

// under reports whether dir is top or below it.
func under(dir, top string) bool { return dir == top || strings.HasPrefix(dir, top+"/") }

// isStage reports whether dir belongs to one of the stages (stage0,
// stage1-*, stage2).
func isStage(dir string) bool {
	top, _, _ := strings.Cut(dir, "/")
	return top == "stage0" || top == "stage2" || strings.HasPrefix(top, "stage1-")
}

// TestImportRules enforces DESIGN.md's import rules.
func TestImportRules(t *testing.T) {
	pkgs := readTree(t)
	rules := []struct {
		rule     string
		importer func(dir string) bool
		imported func(dir, name string) bool
	}{
		{"stage1-* and stage2 never import stage0",
			func(d string) bool { return isStage(d) && !under(d, "stage0") },
			func(d, _ string) bool { return under(d, "stage0") }},
		{"pkg/pod imports no stage",
			func(d string) bool { return under(d, "pkg/pod") },
			func(d, _ string) bool { return isStage(d) }},
		{"pkg/ imports no stage: shared code lives in packages, each stage1's own beside its main",
			func(d string) bool { return under(d, "pkg") },
			func(d, _ string) bool { return isStage(d) }},
		{"pkg/stage1image is build time only: only a stage1's mkimage imports it",
			func(d string) bool { return !strings.HasSuffix(d, "/mkimage") },
			func(d, _ string) bool { return under(d, "pkg/stage1image") }},
		{"nothing imports a main package",
			func(string) bool { return true },
			func(_, name string) bool { return name == "main" }},
	}
	if len(pkgs) < 10 || pkgs["pkg/pod"] == nil || pkgs["stage0"] == nil {
		t.Fatalf("read %d packages, pkg/pod or stage0 missing: the walk is broken", len(pkgs))
	}
	for _, r := range rules {
		for dir, p := range pkgs {
			if !r.importer(dir) {
				continue
			}
			for imp, files := range p.imports {
				name := ""
				if q := pkgs[imp]; q != nil {
					name = q.name
				}
				if r.imported(imp, name) {
					t.Errorf("%s imports %s: %s (DESIGN.md)", strings.Join(files, ", "), imp, r.rule)
				}
			}
		}
	}
}

// TestPackageDocs checks that every package says what it provides in a doc
// comment (STYLE.md 12).
func TestPackageDocs(t *testing.T) {
	for dir, p := range readTree(t) {
		if p.name != "" && !p.doc {
			t.Errorf("package %s (%s) has no doc comment: add `// Package %s ...` (or `// Command ...`) above its package clause", p.name, dir, p.name)
		}
	}
}

// TestNoRegexpAtInit: every skiff command starts the whole binary, and its
// package initialisation is a large part of a short command's time (rm,
// list): a package-level regexp.MustCompile compiles at every start, for
// every command. Compile it when first used (sync.OnceValue).
func TestNoRegexpAtInit(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// tests/ holds no part of a skiff binary.
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor" || n == "bin" || path == filepath.Join(root, "tests")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, v := range spec.(*ast.ValueSpec).Values {
					c, ok := v.(*ast.CallExpr)
					if !ok {
						continue
					}
					if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "MustCompile" {
						if x, ok := sel.X.(*ast.Ident); ok && x.Name == "regexp" {
							t.Errorf("%s: a package-level regexp.MustCompile runs at every start of the binary: use sync.OnceValue", fset.Position(c.Pos()))
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
