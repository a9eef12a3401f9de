package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// A script that reports the names of the checks that did not hold (no string library needed).
func checks(body string) string {
	return `local failed = ""
local function check(name, ok) if not ok then failed = failed .. name .. " " end end
` + body + `
if failed == "" then return {status = "Healthy"} end
return {status = "Degraded", message = failed}`
}

func mustEval(t *testing.T, obj map[string]any, script string, openLibs bool) result {
	t.Helper()
	got, err := evalHealthLua(obj, script, openLibs)
	if err != nil {
		t.Fatalf("evalHealthLua: %v", err)
	}
	return got
}

func TestObjectConversionMatchesDecodeValue(t *testing.T) {
	obj := map[string]any{
		"float":    1.5,
		"int64":    int64(3),
		"int":      7,
		"int32":    int32(-2),
		"number":   json.Number("42"),
		"bool":     true,
		"null":     nil,
		"array":    []any{"a", nil, "c"},
		"emptyArr": []any{},
		"emptyObj": map[string]any{},
		"nested":   map[string]any{"list": []any{map[string]any{"k": "v"}}},
		"other":    uint8(1),
	}
	script := checks(`
check("float", obj.float == 1.5)
check("int64", type(obj.int64) == "number" and obj.int64 == 3)
check("int", obj.int == 7)
check("int32", obj.int32 == -2)
check("json.Number is a string", type(obj.number) == "string" and obj.number == "42")
check("bool", obj.bool == true)
check("null is absent", obj.null == nil)
check("null element dropped", #obj.array == 2 and obj.array[1] == "a" and obj.array[2] == "c")
check("empty array", type(obj.emptyArr) == "table" and next(obj.emptyArr) == nil)
check("empty object", type(obj.emptyObj) == "table" and next(obj.emptyObj) == nil)
check("nested", obj.nested.list[1].k == "v")
check("other types are nil", obj.other == nil)
check("actionParams", type(actionParams) == "table" and next(actionParams) == nil)
`)
	for _, openLibs := range []bool{false, true} {
		if got := mustEval(t, obj, script, openLibs); got.Status != "Healthy" {
			t.Errorf("openLibs=%v: failed checks: %s", openLibs, got.Message)
		}
	}
}

func TestLibrariesWithoutOpenLibs(t *testing.T) {
	script := checks(`
check("no string", string == nil)
check("no math", math == nil)
check("no io", io == nil)
check("no debug", debug == nil)
check("base", type(ipairs) == "function" and type(pcall) == "function" and type(tostring) == "function")
check("table", type(table.insert) == "function")
check("os.time", type(os.time) == "function" and os.time() > 0)
check("os.date", type(os.date) == "function")
check("no os.exit", os.exit == nil and os.execute == nil and os.getenv == nil and os.remove == nil)
local safe = require("os")
check("require os", type(safe.time) == "function" and safe.exit == nil)
check("string methods", not pcall(function() return ("x"):upper() end))
`)
	if got := mustEval(t, map[string]any{}, script, false); got.Status != "Healthy" {
		t.Errorf("failed checks: %s", got.Message)
	}
}

func TestLibrariesWithOpenLibs(t *testing.T) {
	// Built-in scripts, Argo CD's own harness and useOpenLibs customizations: every gopher-lua library,
	// and the full os library (registering the safe one returns the already loaded table).
	script := checks(`
check("string", string.format("%d", 3) == "3")
check("math", math.floor(2.5) == 2)
check("full os", type(os.exit) == "function" and type(os.getenv) == "function")
check("os.time", type(os.time) == "function")
`)
	if got := mustEval(t, map[string]any{}, script, true); got.Status != "Healthy" {
		t.Errorf("failed checks: %s", got.Message)
	}
}

func TestReturnedValues(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   result
		err    string
	}{
		{script: `return {status = "Healthy", message = "fine"}`, want: result{"Healthy", "fine"}},
		{script: `return {status = "Suspended"}`, want: result{Status: "Suspended"}},
		{script: `return nil`, want: result{}},
		{script: `local x = 1`, want: result{}},
		{script: `return {}`, want: result{}},
		{script: `return {status = 5}`, want: result{}},
		{script: `return {status = "healthy"}`, want: result{"Unknown", invalidHealthStatus}},
		{script: `return {message = "no status"}`, want: result{"Unknown", invalidHealthStatus}},
		{script: `return {status = "Healthy"}, "second"`, err: "expect table output from Lua script, not string"},
		{script: `return "Healthy"`, err: "expect table output from Lua script, not string"},
		{script: `error("boom")`, err: "<string>:1: boom"},
		{script: `return {status = "Healthy", [1] = "mixed"}`, err: "cannot encode mixed or invalid key types"},
		{script: `return {status = `, err: "<string>"},
	} {
		got, err := evalHealthLua(map[string]any{}, tc.script, false)
		switch {
		case tc.err != "" && err == nil:
			t.Errorf("%s: no error, got %+v", tc.script, got)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("%s: error %q, want it to contain %q", tc.script, err, tc.err)
		case tc.err != "" && strings.Contains(err.Error(), "stack traceback"):
			t.Errorf("%s: error %q keeps the stack trace", tc.script, err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.script, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("%s: got %+v, want %+v", tc.script, got, tc.want)
		}
	}
}

func TestTimeout(t *testing.T) {
	start := time.Now()
	_, err := evalHealthLua(map[string]any{}, `while true do end`, false)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("err = %v, want the 1 s deadline", err)
	}
	if took := time.Since(start); took < luaTimeout || took > 5*luaTimeout {
		t.Errorf("stopped after %v, want about %v", took, luaTimeout)
	}
}

func TestResourceHealthAroundTheScript(t *testing.T) {
	script := `return {status = "Healthy", message = "ran"}`
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig",
		"metadata": map[string]any{"name": "x", "deletionTimestamp": "2026-11-26T05:00:00Z"},
	}}
	if got := argoHealth(obj, script, false); got != (result{"Progressing", "Pending deletion"}) {
		t.Errorf("deleting: %+v", got)
	}
	obj.SetFinalizers([]string{hookFinalizer})
	if got := argoHealth(obj, script, false); got != (result{"Healthy", "ran"}) {
		t.Errorf("deleting, held by the hook finalizer: %+v", got)
	}
	if got := argoHealth(nil, script, false); got != (result{Status: "Missing"}) {
		t.Errorf("absent: %+v", got)
	}
	got := argoHealth(&unstructured.Unstructured{Object: map[string]any{}}, `error("boom")`, false)
	if got != (result{"Unknown", "<string>:1: boom"}) {
		t.Errorf("script error: %+v", got)
	}
}

func TestSafeOsDate(t *testing.T) {
	at := time.Date(2026, 11, 26, 4, 5, 6, 0, time.Local)
	if got := strftime(at, "%Y-%m-%d %H:%M:%S %% %w %q %"); got != "2026-11-26 04:05:06 % 4 %q %" {
		t.Errorf("strftime = %q", got)
	}
	script := checks(`
local t = os.date("*t", os.time{year = 2026, month = 11, day = 26})
check("*t", t.year == 2026 and t.month == 11 and t.day == 26 and t.hour == 12 and t.wday == 5 and t.isdst == false)
check("format", os.date("%Y", os.time{year = 2026, month = 1, day = 2}) == "2026")
`)
	if got := mustEval(t, map[string]any{}, script, false); got.Status != "Healthy" {
		t.Errorf("failed checks: %s", got.Message)
	}
}

func TestKstatusReadsIntegersAsClientGoDoes(t *testing.T) {
	stale := `{"apiVersion": "fax.faxbot.io/v1alpha1", "kind": "FaxPluginConfig",
		"metadata": {"name": "x", "generation": 2}, "status": {"observedGeneration": 1}}`
	got, err := kstatusOfJSON([]byte(stale))
	if err != nil || got.Status != "InProgress" {
		t.Errorf("stale: %+v %v", got, err)
	}
	// Decoded with encoding/json the generation is a float64, which kstatus refuses: this is why the tool
	// decodes with apimachinery.
	var plain map[string]any
	if err := json.Unmarshal([]byte(stale), &plain); err != nil {
		t.Fatal(err)
	}
	if got := kstatusOf(&unstructured.Unstructured{Object: plain}); got.Status != "Unknown" {
		t.Errorf("float64 generation: %+v", got)
	}
	if got, _ := kstatusOfJSON([]byte("null")); got != (result{"NotFound", "Resource not found"}) {
		t.Errorf("null: %+v", got)
	}
}

// The harnesses fail on a wrong status, a wrong message, and a fixture without a case.
func TestHarnessesFail(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("health-thing.lua", `return {status = "Healthy", message = obj.metadata.name}`)
	write("testdata/a.yaml", "apiVersion: example.io/v1\nkind: Thing\nmetadata:\n  name: a\n")
	write("testdata/b.yaml", "apiVersion: example.io/v1\nkind: Thing\nmetadata:\n  name: b\n")
	write("health_test.yaml", "tests:\n- healthStatus: {status: Healthy, message: a}\n  inputPath: testdata/a.yaml\n"+
		"- healthStatus: {status: Healthy, message: b}\n  inputPath: testdata/b.yaml\n")
	write("kstatus_test.yaml", "tests:\n- kstatus: {status: Current, message: Resource is current}\n  inputPath: testdata/a.yaml\n"+
		"- kstatus: {status: Current, message: Resource is current}\n  inputPath: testdata/b.yaml\n")
	var out bytes.Buffer
	if code := run([]string{"argocd-test", dir}, nil, &out, &out); code != 0 {
		t.Fatalf("argocd-test on a good directory: %d\n%s", code, out.String())
	}
	if code := run([]string{"kstatus-test", dir}, nil, &out, &out); code != 0 {
		t.Fatalf("kstatus-test on a good directory: %d\n%s", code, out.String())
	}
	caseB := "- healthStatus: {status: Healthy, message: b}\n  inputPath: testdata/b.yaml\n"
	for name, broken := range map[string]string{
		"wrong message":   "tests:\n- healthStatus: {status: Healthy, message: x}\n  inputPath: testdata/a.yaml\n" + caseB,
		"wrong status":    "tests:\n- healthStatus: {status: Degraded, message: a}\n  inputPath: testdata/a.yaml\n" + caseB,
		"no message":      "tests:\n- healthStatus: {status: Healthy}\n  inputPath: testdata/a.yaml\n" + caseB,
		"fixture missing": "tests:\n" + caseB,
		"misspelt key":    "tests:\n- healthStatu: {status: Healthy, message: a}\n  inputPath: testdata/a.yaml\n" + caseB,
	} {
		write("health_test.yaml", broken)
		out.Reset()
		if code := run([]string{"argocd-test", dir}, nil, &out, &out); code == 0 {
			t.Errorf("%s: argocd-test passed:\n%s", name, out.String())
		}
	}
	write("kstatus_test.yaml", "tests:\n- kstatus: {status: Current, message: Resource is Ready}\n  inputPath: testdata/a.yaml\n"+
		"- kstatus: {status: Current, message: Resource is current}\n  inputPath: testdata/b.yaml\n")
	out.Reset()
	if code := run([]string{"kstatus-test", dir}, nil, &out, &out); code == 0 {
		t.Errorf("kstatus-test with a wrong message passed:\n%s", out.String())
	}
}
