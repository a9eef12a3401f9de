package main

// A model of how Argo CD evaluates a resource health Lua script, written after reading github.com/argoproj/argo-cd
// at 37ee0097cf851bc2dd7665fc081bbce61a7e836e (master, VERSION 3.6.0, 2026-08-22) and compared with the latest
// release, v3.5.1, which behaves the same in everything mirrored here:
//
//   - util/lua/lua.go: VM.runLuaWithResourceActionParameters (the Lua state, its libraries, the globals
//     `obj` and `actionParams`, the 1 s timeout, the stack trace dropped from run-time errors),
//     VM.ExecuteHealthLua (how the returned value becomes a health status) and decodeValue (how the
//     object becomes a Lua table);
//   - util/lua/oslib_safe.go: the `os` library reduced to os.time and os.date;
//   - util/lua/health_test.go: the health_test.yaml harness (runArgoHarness in harness.go);
//   - gitops-engine/pkg/health/health.go: GetResourceHealth (objects being deleted, script errors).
//
// It uses the same Lua implementation (github.com/yuin/gopher-lua, the version Argo CD pins) and the same
// JSON encoder for the returned table (layeh.com/gopher-json), so what differs from Argo CD is only the code
// that wires them together, re-written here. Left out because it does not change results: the compiled-script
// cache master added (v3.5.1 calls DoString, master LoadString + PCall: the same thing).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
)

const (
	// Argo CD cancels a script after one second (context.WithTimeout in runLuaWithResourceActionParameters).
	luaTimeout = time.Second
	// The message Argo CD reports when a script returns a status outside the six health codes.
	invalidHealthStatus = "Lua returned an invalid health status"
	// Objects being deleted are "Pending deletion" unless this Argo CD hook finalizer holds them.
	hookFinalizer = "argocd.argoproj.io/hook-finalizer"
)

// The health codes of gitops-engine/pkg/health (isValidHealthStatusCode accepts exactly these).
var healthCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// newArgoLuaState builds the Lua state as Argo CD does. With openLibs (the built-in scripts, Argo CD's own
// test harness, and argocd-cm scripts with resource.customizations.useOpenLibs.<group>_<kind>: true) gopher-lua
// opens all its standard libraries first; without it (the argocd-cm default) nothing is open but what
// follows: package, base and table, then an `os` holding only time and date, also behind require("os").
// Note that string and math are NOT available to an argocd-cm script by default.
func newArgoLuaState(openLibs bool) *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		// As in Argo CD: each opener is called with the library name, and a failure is a bug (panic).
		err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name))
		if err != nil {
			panic(err)
		}
	}
	l.PreloadModule(lua.OsLibName, loadSafeOs)
	return l
}

// evalHealthLua is VM.ExecuteHealthLua: the health the script returns for obj, or the error Argo CD
// returns (which its callers turn into status Unknown with the error as the message).
func evalHealthLua(obj map[string]any, script string, openLibs bool) (result, error) {
	l := newArgoLuaState(openLibs)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), luaTimeout)
	defer cancel()
	l.SetContext(ctx)

	// Health scripts see the same globals as actions: `actionParams` (empty here) and `obj`.
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", toLua(l, obj))

	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	// Argo CD shows run-time errors without gopher-lua's stack trace.
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = ""
	}
	if err != nil {
		return result{}, err
	}

	// The last value on the stack: a script that returns two values is judged by the second.
	returned := l.Get(-1)
	switch returned.Type() {
	case lua.LTNil:
		return result{}, nil
	case lua.LTTable:
	default:
		return result{}, fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	encoded, err := luajson.Encode(returned)
	if err != nil {
		return result{}, err
	}
	var hs struct {
		Status  string `json:"status,omitempty"`
		Message string `json:"message,omitempty"`
	}
	if err := json.Unmarshal(encoded, &hs); err != nil {
		// Argo CD means to catch an empty table (encoded as []), but its errors.As matches every
		// *json.UnmarshalTypeError, so a table with e.g. a numeric status is also an empty status, not an
		// error. Mirrored.
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return result{}, nil
		}
		return result{}, err
	}
	if !healthCodes[hs.Status] {
		return result{Status: "Unknown", Message: invalidHealthStatus}, nil
	}
	return result{Status: hs.Status, Message: hs.Message}, nil
}

// argoHealth is the health Argo CD's application controller shows for a live object whose kind has this
// script as its argocd-cm health customization: gitops-engine's GetResourceHealth around evalHealthLua.
// A nil object is Missing (the controller's answer when there is no live object).
func argoHealth(obj *unstructured.Unstructured, script string, openLibs bool) result {
	if obj == nil {
		return result{Status: "Missing"}
	}
	if obj.GetDeletionTimestamp() != nil && !hasFinalizer(obj, hookFinalizer) {
		return result{Status: "Progressing", Message: "Pending deletion"}
	}
	res, err := evalHealthLua(obj.Object, script, openLibs)
	if err != nil {
		return result{Status: "Unknown", Message: err.Error()}
	}
	return res
}

func hasFinalizer(obj *unstructured.Unstructured, name string) bool {
	for _, f := range obj.GetFinalizers() {
		if f == name {
			return true
		}
	}
	return false
}

// argoHealthOfJSON decodes the object as client-go does (the controller's cluster cache holds objects
// decoded that way: integers as int64) and evaluates its health.
func argoHealthOfJSON(input []byte, script string, openLibs bool) (result, error) {
	input = bytes.TrimSpace(input)
	if string(input) == "null" {
		return argoHealth(nil, script, openLibs), nil
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(input); err != nil {
		return result{}, fmt.Errorf("reading the object: %w", err)
	}
	return argoHealth(obj, script, openLibs), nil
}

// toLua converts a decoded JSON value as Argo CD's decodeValue does:
//   - numbers (float64 from encoding/json; int64, int or int32 from client-go) become Lua numbers, but a
//     json.Number becomes a Lua *string*;
//   - objects become tables keyed by string; a null member is simply absent;
//   - arrays become sequences 1..n, appended one by one, and LTable.Append skips nil, so a null element is
//     dropped and the ones after it move up;
//   - an empty array and an empty object are both an empty table, indistinguishable to the script;
//   - any other Go type becomes nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		seq := l.CreateTable(len(v), 0)
		for _, item := range v {
			seq.Append(toLua(l, item))
		}
		return seq
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	default:
		return lua.LNil
	}
}

// The safe `os` library of util/lua/oslib_safe.go: os.time and os.date only (no exit, execute, getenv,
// remove, ...). With openLibs the full os library is already loaded and registering this one returns the
// loaded table unchanged (gopher-lua's RegisterModule), so such scripts keep the whole os library.
func safeOsFunctions() map[string]lua.LGFunction {
	return map[string]lua.LGFunction{"time": safeOsTime, "date": safeOsDate}
}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.OsLibName, safeOsFunctions()))
	return 1
}

func loadSafeOs(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOsFunctions()))
	return 1
}

// os.time(): now; os.time{year=, month=, day=, hour=12, min=0, sec=0} in local time (isdst is ignored).
func safeOsTime(l *lua.LState) int {
	if l.GetTop() == 0 {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}
	fields := l.CheckTable(1)
	field := func(name string, fallback int) int {
		if n, ok := fields.RawGetString(name).(lua.LNumber); ok {
			return int(n)
		}
		return fallback
	}
	t := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
		field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
	l.Push(lua.LNumber(t.Unix()))
	return 1
}

// os.date([format [, time]]): format "%c" by default; a leading "!" means UTC for the current time (but
// not for an explicit time, as in Argo CD); "*t" returns a table (yday 0, isdst false).
func safeOsDate(l *lua.LState) int {
	t := time.Now()
	format := "%c"
	if l.GetTop() >= 1 {
		format = l.CheckString(1)
		if strings.HasPrefix(format, "!") {
			t = time.Now().UTC()
			format = strings.TrimLeft(format, "!")
		}
		if l.GetTop() >= 2 {
			t = time.Unix(l.CheckInt64(2), 0)
		}
		if strings.HasPrefix(format, "*t") {
			table := l.NewTable()
			for name, value := range map[string]int{
				"year": t.Year(), "month": int(t.Month()), "day": t.Day(), "hour": t.Hour(), "min": t.Minute(),
				"sec": t.Second(), "wday": int(t.Weekday()) + 1, "yday": 0,
			} {
				table.RawSetString(name, lua.LNumber(value))
			}
			table.RawSetString("isdst", lua.LFalse)
			l.Push(table)
			return 1
		}
	}
	l.Push(lua.LString(strftime(t, format)))
	return 1
}

// The conversions os.date knows (gopher-lua's table, which Argo CD reuses, oddities included: %a gives
// the literal "mon"). Unknown conversions are kept as written; %w is the weekday 0-6.
var strftimeLayouts = map[byte]string{
	'a': "mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST", 'd': "02",
	'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'P': "pm", 'S': "05",
	'x': "15/04/05", 'X': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST",
}

func strftime(t time.Time, format string) string {
	var out strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i == len(format)-1 {
			out.WriteByte(c)
			continue
		}
		i++
		conv := format[i]
		if layout, ok := strftimeLayouts[conv]; ok {
			out.WriteString(t.Format(layout))
			continue
		}
		switch conv {
		case '%':
			out.WriteByte('%')
		case 'w':
			out.WriteString(strconv.Itoa(int(t.Weekday())))
		default:
			out.WriteByte('%')
			out.WriteByte(conv)
		}
	}
	return out.String()
}
