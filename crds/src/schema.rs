//! Hand-written schema fragments for the few fields schemars cannot describe the Kubernetes way.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Plugin settings: a free-form object (its shape depends on the plugin and is checked by the operator
/// against the plugin manifest), bounded so a runaway document cannot bloat etcd.
pub fn plugin_settings(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Non-secret plugin settings, checked by the operator against the plugin manifest's JSON \
                        Schema (unknown keys, wrong types and out-of-range values are reported in the Ready \
                        condition). Never put credentials or patient data here: settings end up in a ConfigMap.",
        "type": "object",
        "maxProperties": 64,
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Status conditions as a list map keyed by `type`, so server-side apply can merge them per type.
pub fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Standard Kubernetes conditions (Ready, and for configs Progressing and Degraded). \
                        `kubectl wait --for=condition=Ready`, Flux and Argo CD health checks read them.",
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "description": "One observed aspect of the resource's state.",
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": {"description": "Condition type, for example Ready.", "type": "string", "maxLength": 316},
                "status": {"description": "True, False or Unknown.", "type": "string", "enum": ["True", "False", "Unknown"]},
                "observedGeneration": {"description": "The metadata.generation this condition was computed from.", "type": "integer", "format": "int64", "minimum": 0},
                "lastTransitionTime": {"description": "When the status last changed.", "type": "string", "format": "date-time"},
                "reason": {"description": "One CamelCase word a program can match on.", "type": "string", "maxLength": 1024},
                "message": {"description": "A sentence for humans.", "type": "string", "maxLength": 32768}
            }
        }
    })
}
