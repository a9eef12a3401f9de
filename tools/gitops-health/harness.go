package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// health_test.yaml, in the format of Argo CD's resource_customizations/<group>/<kind>/health_test.yaml
// (util/lua/health_test.go reads it with sigs.k8s.io/yaml into the same shape).
type argoTests struct {
	Tests []struct {
		InputPath    string `json:"inputPath"`
		HealthStatus result `json:"healthStatus"`
	} `json:"tests"`
}

// kstatus_test.yaml: the same fixtures and what cli-utils' status.Compute must say about them.
type kstatusTests struct {
	Tests []struct {
		InputPath string `json:"inputPath"`
		Kstatus   result `json:"kstatus"`
	} `json:"tests"`
}

// The Argo CD health check for a kind lives next to the harness as health-<kind in lower case>.lua.
func scriptFor(dir, kind string) string {
	return filepath.Join(dir, "health-"+strings.ToLower(kind)+".lua")
}

// tally counts checks and reports each one.
type tally struct {
	out            io.Writer
	passed, failed int
}

func (t *tally) check(name string, want, got result, err error) {
	switch {
	case err != nil:
		t.failed++
		fmt.Fprintf(t.out, "FAIL %s: error %v (want %s %q)\n", name, err, want.Status, want.Message)
	case got != want:
		t.failed++
		fmt.Fprintf(t.out, "FAIL %s:\n       got  %s %q\n       want %s %q\n", name, got.Status, got.Message, want.Status,
			want.Message)
	default:
		t.passed++
		fmt.Fprintf(t.out, "ok   %s: %s %q\n", name, got.Status, got.Message)
	}
}

func (t *tally) problem(format string, args ...any) {
	t.failed++
	fmt.Fprintf(t.out, "FAIL "+format+"\n", args...)
}

func (t *tally) finish(what string) int {
	fmt.Fprintf(t.out, "%s: %d passed, %d failed\n", what, t.passed, t.failed)
	if t.failed > 0 || t.passed == 0 {
		return 1
	}
	return 0
}

// readStrict reads a harness file; unknown fields are an error (a misspelt key would otherwise turn an
// expectation into an empty one).
func readStrict(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// coverage checks that every fixture in <dir>/testdata has a case in the harness file.
func coverage(t *tally, dir, harness string, inputs []string) {
	fixtures, _ := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
	used := map[string]bool{}
	for _, in := range inputs {
		used[filepath.Clean(filepath.Join(dir, in))] = true
	}
	for _, f := range fixtures {
		if !used[filepath.Clean(f)] {
			t.problem("%s has no case in %s", f, harness)
		}
	}
}

// runArgoHarness does what Argo CD's TestLuaHealthScript does for one directory: for each case, read the
// fixture with sigs.k8s.io/yaml into a map, run the kind's script with ExecuteHealthLua and compare status
// AND message. Argo CD's harness runs scripts with the standard libraries open; each case runs here a
// second time without them, as an argocd-cm customization runs by default, and must give the same answer.
func runArgoHarness(dir string, stdout, stderr io.Writer) int {
	var tests argoTests
	if err := readStrict(filepath.Join(dir, "health_test.yaml"), &tests); err != nil {
		return fail(stderr, err)
	}
	t := &tally{out: stdout}
	usedScripts := map[string]bool{}
	var inputs []string
	for _, tc := range tests.Tests {
		inputs = append(inputs, tc.InputPath)
		data, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
		if err != nil {
			t.problem("%s: %v", tc.InputPath, err)
			continue
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(data, &obj); err != nil {
			t.problem("%s: %v", tc.InputPath, err)
			continue
		}
		kind, _ := obj["kind"].(string)
		scriptPath := scriptFor(dir, kind)
		script, err := os.ReadFile(scriptPath)
		if err != nil {
			t.problem("%s: no health check for kind %q: %v", tc.InputPath, kind, err)
			continue
		}
		usedScripts[filepath.Clean(scriptPath)] = true
		for _, openLibs := range []bool{true, false} {
			mode := "argocd-cm default, no open libs"
			if openLibs {
				mode = "open libs, as Argo CD's harness"
			}
			got, err := evalHealthLua(obj, string(script), openLibs)
			t.check(fmt.Sprintf("%s (%s)", tc.InputPath, mode), tc.HealthStatus, got, err)
		}
	}
	coverage(t, dir, "health_test.yaml", inputs)
	scripts, _ := filepath.Glob(filepath.Join(dir, "health-*.lua"))
	for _, s := range scripts {
		if !usedScripts[filepath.Clean(s)] {
			t.problem("%s has no case in health_test.yaml", s)
		}
	}
	return t.finish("argocd-test " + dir)
}

// runKstatusHarness checks <dir>/kstatus_test.yaml: each fixture, decoded as client-go decodes objects,
// through status.Compute; status AND message must match.
func runKstatusHarness(dir string, stdout, stderr io.Writer) int {
	var tests kstatusTests
	if err := readStrict(filepath.Join(dir, "kstatus_test.yaml"), &tests); err != nil {
		return fail(stderr, err)
	}
	t := &tally{out: stdout}
	var inputs []string
	for _, tc := range tests.Tests {
		inputs = append(inputs, tc.InputPath)
		obj, err := readObject(filepath.Join(dir, tc.InputPath))
		if err != nil {
			t.problem("%s: %v", tc.InputPath, err)
			continue
		}
		t.check(tc.InputPath, tc.Kstatus, kstatusOf(obj), nil)
	}
	coverage(t, dir, "kstatus_test.yaml", inputs)
	return t.finish("kstatus-test " + dir)
}

// readObject reads a YAML manifest as a client would receive it from the API server (JSON decoded by
// apimachinery: integers as int64).
func readObject(path string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	asJSON, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(asJSON); err != nil {
		return nil, err
	}
	return obj, nil
}
