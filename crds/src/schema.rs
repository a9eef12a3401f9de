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

/// An HTTP plugin manifest: typed where admission rules need the values (id, domains, webhook verification),
/// free-form elsewhere (its full shape is checked by the operator with `faxbot_contract::manifest::check`,
/// the same check the API server runs).
pub fn http_manifest(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The HTTP plugin manifest (docs/plugins.md).",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["id", "allowedDomains"],
        "properties": {
            "id": {"description": "Plugin id: the FaxProvider's spec.plugin, the webhook path /webhooks/<id>.",
                   "type": "string", "pattern": "^[a-z][a-z0-9-]{1,39}$"},
            "allowPrivateNetwork": {"description": "Let allowedDomains hold private or shared addresses.",
                                    "type": "boolean"},
            "allowedDomains": {
                "description": "The only hosts requests may go to.",
                "type": "array", "minItems": 1, "maxItems": 16,
                "items": {
                    "type": "string", "maxLength": 253,
                    "x-kubernetes-validations": [
                        {"rule": "!(self.startsWith('169.254.') || self.lowerAscii().startsWith('fe80:') || self.lowerAscii().startsWith('[fe80:') || self in ['metadata', 'metadata.google.internal', 'instance-data', 'instance-data.ec2.internal', '100.100.100.200', 'fd00:ec2::254', '[fd00:ec2::254]'])",
                         "message": "must not be a link-local or metadata address"},
                        {"rule": "!(self == 'localhost' || self.endsWith('.localhost') || self.startsWith('127.') || self in ['::1', '[::1]'])",
                         "message": "is a loopback address: a provider is never this server's own host"},
                        {"rule": "!self.startsWith('*') || self.matches('^[*][.][a-z0-9-]+([.][a-z0-9-]+)+$')",
                         "message": "a wildcard covers one label under a domain name of at least two labels (*.example.com)"}
                    ]
                }
            },
            "actions": {
                "description": "The send, status, cancel and list requests.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "required": ["send", "status"],
                "properties": {
                    "send": action("Submits a fax."),
                    "status": action("Reads a fax's status."),
                    "cancel": action("Cancels a fax."),
                    "list": action("Finds the faxes of a job (makes resubmission safe).")
                }
            },
            "webhook": {
                "description": "Status callbacks: verification, body format, where the fax id is.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "verification": {
                        "description": "How a callback proves it comes from the provider.",
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "required": ["scheme"],
                        "properties": {
                            "scheme": {"description": "hmac, ed25519, basic, token or none.",
                                       "type": "string", "enum": ["hmac", "ed25519", "basic", "token", "none"]},
                            "allowUnverified": {"description": "With scheme none: accept unverified callbacks.",
                                                "type": "boolean"}
                        },
                        "x-kubernetes-validations": [
                            {"rule": "self.scheme != 'none' || (has(self.allowUnverified) && self.allowUnverified)",
                             "message": "declares no webhook verification: anyone could call it; verify callbacks (hmac, ed25519, basic or token) or set allowUnverified: true"}
                        ]
                    }
                }
            }
        },
        "x-kubernetes-validations": [
            {"rule": "[has(self.actions.send) ? self.actions.send.url : '', has(self.actions.status) ? self.actions.status.url : '', has(self.actions.cancel) ? self.actions.cancel.url : '', has(self.actions.list) ? self.actions.list.url : ''].all(u, u == '' || !u.startsWith('https://') || u.split('/')[2] in self.allowedDomains || u.split('/')[2].split(':')[0] in self.allowedDomains || (u.split('/')[2].startsWith('{{') && ('*.' + u.split('/')[2].split('}}.')[1]) in self.allowedDomains))",
             "message": "an action URL's host is not in allowedDomains"},
            {"rule": "(has(self.allowPrivateNetwork) && self.allowPrivateNetwork) || self.allowedDomains.all(d, !(d.startsWith('10.') || d.startsWith('192.168.') || d.matches('^172[.](1[6-9]|2[0-9]|3[01])[.]') || d.matches('^100[.](6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])[.]') || d.lowerAscii().matches('^[[]?f[cd][0-9a-f]{0,2}:')))",
             "message": "allowedDomains holds a private or shared address: set allowPrivateNetwork for a gateway on your internal network"}
        ]
    })
}

/// One action of a manifest: the URL and headers typed, so admission can refuse what a rule can see in them.
fn action(description: &str) -> serde_json::Value {
    // Templates that name the environment or a file, and statements, are refused here by pattern; the
    // operator's check (the API server's own) refuses them precisely, whatever their spelling.
    let refused = "(^|[^a-zA-Z0-9_])(env|environ)[.]|(file|open)[ ]*[(]|[{]%";
    serde_json::json!({
        "description": description,
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["url"],
        "properties": {
            "url": {
                "description": "URL template: https, scheme and host written out (or a first label `{{ settings.<name> }}.` under a `*.` domain), the host in allowedDomains.",
                "type": "string",
                "maxLength": 4096,
                "x-kubernetes-validations": [
                    {"rule": "self.startsWith('https://') && self.split('/')[2].size() > 0 && (!self.split('/')[2].contains('{{') || self.split('/')[2].matches('^[{][{] *settings[.][A-Za-z0-9_]+ *[}][}][.][a-z0-9][a-z0-9.-]*$')) && !self.split('/')[2].contains('@')",
                     "message": "must be an https URL whose host is written out (no user@; only a first label may be a setting: {{ settings.<name> }}.<domain>)"},
                    {"rule": format!("!self.matches('{refused}')"),
                     "message": "templates cannot read the environment or files, and statements ({% … %}) are not allowed"}
                ]
            },
            "headers": {
                "description": "Header templates.",
                "type": "object",
                "maxProperties": 32,
                "additionalProperties": {"type": "string", "maxLength": 4096},
                "x-kubernetes-validations": [
                    {"rule": format!("self.all(k, !self[k].matches('{refused}'))"),
                     "message": "templates cannot read the environment or files, and statements ({% … %}) are not allowed"}
                ]
            }
        }
    })
}
