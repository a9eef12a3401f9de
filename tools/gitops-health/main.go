// Command gitops-health tells what Flux and Argo CD would report as the health of one Kubernetes object,
// with the code those tools run (kstatus) or a faithful model of it (Argo CD's Lua VM), so the health
// contract of the Faxbot custom resources is tested without a live Flux or Argo CD.
//
//	gitops-health kstatus                     < object.json   sigs.k8s.io/cli-utils status.Compute
//	gitops-health argocd [--open-libs] <lua>  < object.json   an Argo CD resource health Lua script
//	gitops-health argocd-test <dir>           Argo CD's health_test.yaml harness over <dir>
//	gitops-health kstatus-test <dir>          the same fixtures against <dir>/kstatus_test.yaml
//
// kstatus and argocd print {"status": ..., "message": ...} and exit 0 whatever the status is; they exit 2
// when the input cannot be read. The *-test commands print one line per check and exit 1 on any mismatch.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// result is what both tools report about an object.
type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

const usage = `usage:
  gitops-health kstatus < object.json
  gitops-health argocd [--open-libs] <health.lua> < object.json
  gitops-health argocd-test <dir>
  gitops-health kstatus-test <dir>
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch sub, rest := args[0], args[1:]; {
	case sub == "kstatus" && len(rest) == 0:
		input, err := io.ReadAll(stdin)
		if err != nil {
			return fail(stderr, err)
		}
		res, err := kstatusOfJSON(input)
		if err != nil {
			return fail(stderr, err)
		}
		return printResult(stdout, stderr, res)
	case sub == "argocd" && (len(rest) == 1 || len(rest) == 2 && rest[0] == "--open-libs"):
		openLibs := len(rest) == 2
		script, err := os.ReadFile(rest[len(rest)-1])
		if err != nil {
			return fail(stderr, err)
		}
		input, err := io.ReadAll(stdin)
		if err != nil {
			return fail(stderr, err)
		}
		res, err := argoHealthOfJSON(input, string(script), openLibs)
		if err != nil {
			return fail(stderr, err)
		}
		return printResult(stdout, stderr, res)
	case sub == "argocd-test" && len(rest) == 1:
		return runArgoHarness(rest[0], stdout, stderr)
	case sub == "kstatus-test" && len(rest) == 1:
		return runKstatusHarness(rest[0], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
}

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "gitops-health: %v\n", err)
	return 2
}

func printResult(stdout, stderr io.Writer, res result) int {
	out, err := json.Marshal(res)
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}
