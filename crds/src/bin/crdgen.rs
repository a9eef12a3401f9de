//! Prints the Faxbot CRDs as YAML; the output is checked in as `crds/yaml/crds.yaml`.

fn main() {
    print!("{}", faxbot_crds::crds_yaml());
}
