package main

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// kstatusOfJSON decodes the object as client-go does — integers become int64, which matters: kstatus
// reads metadata.generation and status.observedGeneration with NestedInt64, which refuses a float64 — and
// computes its status. The JSON `null` stands for an absent object: NotFound, as the kstatus poller (and so
// Flux) reports it; Compute itself never returns NotFound.
func kstatusOfJSON(input []byte) (result, error) {
	input = bytes.TrimSpace(input)
	if string(input) == "null" {
		return result{Status: string(status.NotFoundStatus), Message: "Resource not found"}, nil
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(input); err != nil {
		return result{}, fmt.Errorf("reading the object: %w", err)
	}
	return kstatusOf(obj), nil
}

// kstatusOf runs cli-utils' own status.Compute. An error becomes Unknown with the error as the message,
// which is what the poller's generic status reader reports for it (and Flux prints).
func kstatusOf(obj *unstructured.Unstructured) result {
	res, err := status.Compute(obj)
	if err != nil {
		return result{Status: string(status.UnknownStatus), Message: err.Error()}
	}
	return result{Status: string(res.Status), Message: res.Message}
}
